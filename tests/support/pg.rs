//! The machine's PostgreSQL (`127.0.0.1:5432`, trust auth, database `test`)
//! and a schema of a test's own, dropped when the test lets go of it.

use sqlx::Connection;

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema name no other test uses; the schema itself is created by
/// whoever connects with [`Schema::url`] (the archive creates it).
pub struct Schema {
    pub name: String,
}

impl Schema {
    pub fn new() -> Self {
        Self {
            name: format!("test_{}", ulid::Ulid::new().to_string().to_lowercase()),
        }
    }

    /// `PG_URL` with `?schema=NAME`, as `LEADCHAT_DATABASE_URL` takes it.
    pub fn url(&self) -> String {
        format!("{PG_URL}?schema={}", self.name)
    }
}

impl Default for Schema {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let ddl = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        // Drop may run inside a test's runtime, which cannot be blocked on;
        // a private runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for cleanup");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(PG_URL).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(ddl))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
