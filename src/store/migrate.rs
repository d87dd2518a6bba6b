//! `leadchat migrate-keys`: renames the Python deployment's keys
//! (`session:ID`, `lead:ID`, `session:ID:chat`, `session:ID:finalized`) to the
//! hash-tagged layout. RENAMENX never overwrites a key leadchat already wrote.

use redis::AsyncCommands;

use super::StoreError;
use super::keys::Keys;

#[derive(Debug, Default)]
pub struct MigrationReport {
    pub sessions: usize,
    pub renamed: usize,
    pub skipped: usize,
}

fn legacy_id<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    let rest = rest
        .strip_prefix("session:")
        .or_else(|| rest.strip_prefix("lead:"))?;
    let id = rest.split(':').next()?;
    (!id.is_empty() && !id.contains(['{', '}'])).then_some(id)
}

pub async fn migrate_legacy_keys(
    url: &str,
    prefix: &str,
    dry_run: bool,
) -> Result<MigrationReport, StoreError> {
    let unavailable = |e: redis::RedisError| StoreError::Unavailable(e.to_string());
    let client = redis::Client::open(url).map_err(unavailable)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(unavailable)?;
    let mut ids = std::collections::BTreeSet::new();
    for pattern in [format!("{prefix}session:*"), format!("{prefix}lead:*")] {
        let mut iter: redis::AsyncIter<String> =
            conn.scan_match(&pattern).await.map_err(unavailable)?;
        while let Some(item) = iter.next_item().await {
            let key = item.map_err(unavailable)?;
            if let Some(id) = legacy_id(&key, prefix) {
                ids.insert(id.to_owned());
            }
        }
    }
    let keys = Keys::new(prefix);
    let mut report = MigrationReport {
        sessions: ids.len(),
        ..Default::default()
    };
    for id in &ids {
        for (old, new) in keys.legacy(id) {
            let exists: bool = conn.exists(&old).await.map_err(unavailable)?;
            if !exists {
                continue;
            }
            if dry_run {
                println!("{old} -> {new}");
                report.renamed += 1;
                continue;
            }
            let renamed: bool = redis::cmd("RENAMENX")
                .arg(&old)
                .arg(&new)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if renamed {
                report.renamed += 1;
            } else {
                report.skipped += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::legacy_id;

    #[test]
    fn recognises_only_unbraced_keys() {
        assert_eq!(legacy_id("session:abc", ""), Some("abc"));
        assert_eq!(legacy_id("session:abc:chat", ""), Some("abc"));
        assert_eq!(legacy_id("lead:abc", ""), Some("abc"));
        assert_eq!(legacy_id("session:{abc}:chat", ""), None);
        assert_eq!(legacy_id("p:session:abc", "p:"), Some("abc"));
    }
}
