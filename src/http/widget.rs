//! The embeddable widget (`GET /widget.js`) and the demo site (`GET /`), both
//! compiled into the binary so a deployment is one file.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

const WIDGET_JS: &str = include_str!("../../assets/widget/widget.js");
const DEMO_SITE: &str = include_str!("../../assets/site/index.html");
/// The demo page's own script, a file so the page's CSP needs no inline script.
const DEMO_SCRIPT: &str = include_str!("../../assets/site/site.js");

/// Short enough that a fixed widget reaches every site within minutes; the
/// ETag makes the revalidation after that a 304.
const WIDGET_CACHE_CONTROL: &str = "public, max-age=300";

/// A weak validator: the gzip copy and the plain one share it. Computed at
/// compile time from the embedded bytes, so it changes exactly when they do.
const WIDGET_ETAG: &str = {
    const HASH: u64 = fnv1a(WIDGET_JS.as_bytes());
    const HEX: [u8; 16] = hex(HASH);
    const TAG: [u8; 20] = {
        let mut tag = *b"W/\"0000000000000000\"";
        let mut i = 0;
        while i < 16 {
            tag[3 + i] = HEX[i];
            i += 1;
        }
        tag
    };
    match std::str::from_utf8(&TAG) {
        Ok(tag) => tag,
        Err(_) => panic!("hex digits are ASCII"),
    }
};

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const fn hex(value: u64) -> [u8; 16] {
    let digits = b"0123456789abcdef";
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = digits[((value >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// `GET /widget.js`. Compression is the route's `Compress` middleware.
pub async fn script(req: HttpRequest) -> HttpResponse {
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == &WIDGET_ETAG[2..])
        });
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, HeaderValue::from_static(WIDGET_ETAG)))
        .insert_header((header::CACHE_CONTROL, WIDGET_CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if unchanged {
        return res.finish();
    }
    res.content_type("application/javascript; charset=utf-8")
        .body(WIDGET_JS)
}

/// `GET /`: a sample business site with the widget embedded, to try it.
pub async fn demo_site() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            super::request_guard::CSP_DEMO,
        ))
        .body(DEMO_SITE)
}

/// `GET /site.js`: the demo page's script.
pub async fn demo_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DEMO_SCRIPT)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The widget loads on every page of a customer's site, often on phones.
    const MAX_GZIPPED_BYTES: usize = 20 * 1024;

    #[test]
    fn the_widget_stays_under_20_kb_gzipped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(WIDGET_JS.as_bytes()).expect("gzip in memory");
        let size = gz.finish().expect("gzip in memory").len();
        assert!(
            size <= MAX_GZIPPED_BYTES,
            "widget.js is {size} bytes gzipped; the budget is {MAX_GZIPPED_BYTES}"
        );
    }

    #[test]
    fn the_etag_is_a_weak_validator_of_the_content() {
        assert!(WIDGET_ETAG.starts_with("W/\"") && WIDGET_ETAG.ends_with('"'));
        assert_eq!(WIDGET_ETAG.len(), 20);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }

    #[test]
    fn the_demo_site_embeds_the_widget() {
        assert!(DEMO_SITE.contains("src=\"/widget.js\""));
        // The CSP allows no inline script.
        assert!(!DEMO_SITE.contains("<script>"));
    }

    #[actix_web::test]
    async fn answers_a_matching_if_none_match_with_304() {
        let req = actix_web::test::TestRequest::get()
            .insert_header((header::IF_NONE_MATCH, WIDGET_ETAG))
            .to_http_request();
        assert_eq!(script(req).await.status(), 304);
        let req = actix_web::test::TestRequest::get()
            .insert_header((header::IF_NONE_MATCH, "\"other\""))
            .to_http_request();
        let res = script(req).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/javascript; charset=utf-8"[..])
        );
    }
}
