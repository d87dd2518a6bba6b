//! The admin dashboard's static files, compiled into the binary so a
//! deployment is still one file. No auth here: the page asks for the token
//! and every data call it makes carries it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("../../assets/admin/index.html");
const APP_JS: &str = include_str!("../../assets/admin/app.js");
const APP_CSS: &str = include_str!("../../assets/admin/app.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(index))
        .route("/admin/", web::get().to(index))
        .route("/admin/app.js", web::get().to(app_js))
        .route("/admin/app.css", web::get().to(app_css));
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `no-cache` rather than a long max-age: the files change with the binary
/// and carry no version in their names, so the browser revalidates.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}
