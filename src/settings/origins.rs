//! `allowed_origins`: which web origins may embed the widget (open the
//! visitor WebSocket and call the REST API from a browser). Written as a TOML
//! array in a file, or as a comma-separated string in
//! `LEADCHAT_ALLOWED_ORIGINS`, because figment's `Env` hands over a string.

use serde::{Deserialize, Deserializer};

/// Accepts `["https://a.example", "https://b.example"]` or
/// `"https://a.example, https://b.example"`; entries are normalised so that a
/// trailing slash or upper-case host in the setting cannot cause a refusal.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let entries = match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    let mut origins = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let origin = normalise(entry);
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(serde::de::Error::custom(format!(
                "expected origins like `https://shop.example` or `http://localhost:3000`, got {entry:?}"
            )));
        }
        if origin != "*"
            && origin
                .split("://")
                .nth(1)
                .is_some_and(|rest| rest.contains('/'))
        {
            return Err(serde::de::Error::custom(format!(
                "an origin has no path: write `scheme://host[:port]`, got {entry:?}"
            )));
        }
        origins.push(origin);
    }
    Ok(origins)
}

/// Browsers send `scheme://host[:port]` in lower case without a trailing
/// slash; settings are written by people.
pub fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether a request carrying `origin` may use the widget API. An empty list
/// or a `*` entry allows every origin; the request's own host is always
/// allowed, so the demo page served by this server keeps working under any
/// allowlist.
pub fn is_allowed(allowed: &[String], origin: &str, own_host: Option<&str>) -> bool {
    let origin = normalise(origin);
    if allowed.is_empty() || allowed.iter().any(|a| a == "*" || *a == origin) {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    matches!((origin_host, own_host), (Some(o), Some(h)) if o == h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize")]
        origins: Vec<String>,
    }

    fn parse(toml_value: &str) -> Result<Vec<String>, String> {
        toml::from_str::<Holder>(&format!("origins = {toml_value}"))
            .map(|h| h.origins)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_a_toml_array_or_a_comma_separated_string() {
        assert_eq!(
            parse(r#"["https://a.example", "http://localhost:3000/"]"#).expect("array"),
            ["https://a.example", "http://localhost:3000"]
        );
        assert_eq!(
            parse(r#"" https://A.example ,http://b.example:8080,, ""#).expect("string"),
            ["https://a.example", "http://b.example:8080"]
        );
        assert!(parse(r#""""#).expect("empty").is_empty());
    }

    #[test]
    fn refuses_entries_that_are_not_origins() {
        assert!(parse(r#""shop.example""#).is_err());
        assert!(parse(r#"["https://shop.example/page"]"#).is_err());
    }

    #[test]
    fn an_empty_list_allows_every_origin() {
        assert!(is_allowed(&[], "https://anyone.example", None));
    }

    #[test]
    fn a_list_allows_only_its_origins_and_the_servers_own_host() {
        let list = vec!["https://shop.example".to_owned()];
        assert!(is_allowed(&list, "https://shop.example", None));
        assert!(is_allowed(&list, "HTTPS://Shop.example/", None));
        assert!(!is_allowed(&list, "https://evil.example", None));
        assert!(!is_allowed(&list, "http://shop.example", None));
        assert!(is_allowed(
            &list,
            "http://127.0.0.1:8080",
            Some("127.0.0.1:8080")
        ));
        assert!(!is_allowed(
            &list,
            "http://127.0.0.1:9",
            Some("127.0.0.1:8080")
        ));
    }
}
