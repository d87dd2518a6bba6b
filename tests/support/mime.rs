//! Just enough MIME parsing to check what an SMTP server received: headers
//! (unfolded, RFC 2047 words decoded), multipart splitting, and base64 /
//! quoted-printable bodies. Tests only; not a general parser.

use base64::Engine;

pub struct Part {
    headers: Vec<(String, String)>,
    body: String,
}

impl Part {
    pub fn parse(raw: &str) -> Part {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Part {
            headers,
            body: body.to_owned(),
        }
    }

    /// The raw (still encoded) value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The header with RFC 2047 encoded words decoded.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        self.header(name).map(decode_words)
    }

    pub fn content_type(&self) -> String {
        self.header("Content-Type")
            .unwrap_or("text/plain")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// The value of `param` in header `name`, e.g. the boundary or filename.
    pub fn param(&self, name: &str, param: &str) -> Option<String> {
        let value = self.header(name)?;
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().eq_ignore_ascii_case(param)).then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    /// The sub-parts of a multipart part (empty for a leaf).
    pub fn children(&self) -> Vec<Part> {
        let Some(boundary) = self.param("Content-Type", "boundary") else {
            return Vec::new();
        };
        let delimiter = format!("--{boundary}");
        self.body
            .split(&delimiter)
            .skip(1)
            .take_while(|piece| !piece.starts_with("--"))
            .map(|piece| Part::parse(piece.trim_start_matches('\n')))
            .collect()
    }

    /// The body with its Content-Transfer-Encoding undone.
    pub fn decoded_body(&self) -> Vec<u8> {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = self.body.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("valid base64")
            }
            "quoted-printable" => quoted_printable::decode(
                self.body.replace('\n', "\r\n"),
                quoted_printable::ParseMode::Robust,
            )
            .expect("valid quoted-printable"),
            _ => self.body.as_bytes().to_vec(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.decoded_body()).expect("utf-8 text")
    }

    /// Depth-first search for the first leaf part with this content type.
    pub fn find(&self, content_type: &str) -> Option<Part> {
        for child in self.children() {
            if child.content_type() == content_type {
                return Some(child);
            }
            if let Some(found) = child.find(content_type) {
                return Some(found);
            }
        }
        None
    }
}

/// Decodes `=?utf-8?b?…?=` / `=?utf-8?q?…?=` words; whitespace between two
/// encoded words is dropped, as RFC 2047 says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for token in value.split_whitespace() {
        let decoded = decode_word(token);
        let joins_previous_word = previous_encoded && decoded.is_some();
        if !out.is_empty() && !joins_previous_word {
            out.push(' ');
        }
        previous_encoded = decoded.is_some();
        out.push_str(&decoded.unwrap_or_else(|| token.to_owned()));
    }
    out
}

fn decode_word(token: &str) -> Option<String> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut fields = inner.splitn(3, '?');
    let (_charset, encoding, text) = (fields.next()?, fields.next()?, fields.next()?);
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "q" => {
            quoted_printable::decode(text.replace('_', " "), quoted_printable::ParseMode::Robust)
                .ok()?
        }
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}
