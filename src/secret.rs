//! Secrets in settings: a token and URLs that may carry a password. Their
//! `Debug` and their serialization (`leadchat check-config`, logs of the
//! settings) never show the secret: a token prints `<set>`, a URL prints
//! with its password replaced by `***`. The value itself is reached only by
//! `expose()`, so every place that uses it is a place to grep for.
//!
//! Serializing settings is for showing them; nothing reads a serialized
//! secret back (the figment defaults hold none).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a set secret prints as.
pub const SHOWN: &str = "<set>";

/// A token or password.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that compares or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SHOWN)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SHOWN)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A URL, or a comma-separated list of them (a Redis Cluster's seeds), that
/// may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL as given, password and all, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, safe for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url_list(&self.0)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Returns `url` with any password replaced by `***`, safe for logs.
///
/// An unparseable URL is not echoed at all, since it might still hold a
/// secret. SQLite URLs carry a path, never credentials, and are kept as they
/// are (a path need not parse as a URL).
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // set_password only fails for cannot-be-a-base URLs, which have no password
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// [`redact_url`] of each of a comma-separated list.
pub fn redact_url_list(urls: &str) -> String {
    urls.split(',')
        .map(|u| redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let token = Secret::from("s3cret-admin-token");
        assert_eq!(format!("{token:?}"), "<set>");
        assert_eq!(serde_json::to_string(&token).expect("json"), "\"<set>\"");
        assert_eq!(token.expose(), "s3cret-admin-token");
        let back: Secret = serde_json::from_str("\"t0ken\"").expect("json");
        assert_eq!(back.expose(), "t0ken");
    }

    #[test]
    fn a_url_prints_without_its_password() {
        let url = SecretUrl::from("postgres://user:s3cret@host/db?schema=x");
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("user:***@host"), "{shown}");
        let json = serde_json::to_string(&url).expect("json");
        assert!(!json.contains("s3cret"), "{json}");
        assert_eq!(url.expose(), "postgres://user:s3cret@host/db?schema=x");
        let seeds = SecretUrl::from("redis://:pw1@a:7000, redis://:pw2@b:7001");
        let shown = seeds.redacted();
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
        assert_eq!(shown.matches("***").count(), 2, "{shown}");
    }

    #[test]
    fn what_cannot_be_parsed_is_not_echoed() {
        assert_eq!(redact_url("not a url s3cret"), "<unparseable URL>");
        assert_eq!(
            redact_url("sqlite://data/leadchat.db"),
            "sqlite://data/leadchat.db"
        );
        assert_eq!(
            redact_url("smtp://mailer@mail.example:25"),
            "smtp://mailer@mail.example:25"
        );
    }
}
