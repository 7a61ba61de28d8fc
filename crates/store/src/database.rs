//! Naming a database: `--db` takes a SQLite path (optionally `sqlite://PATH`) or a PostgreSQL URL
//! (`postgres://` / `postgresql://`). One place parses it, opens it, and prints it without its
//! password.

use crate::postgres::{PgOptions, PgStore};
use crate::{SqliteOptions, SqliteStore};
use marketmeter_domain::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (the schema is the connection's `search_path`).
    Postgres(String),
}

/// Tuning of whichever backend is opened.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub sqlite: SqliteOptions,
    pub postgres: PgOptions,
}

/// An opened store and what opening it did to the schema.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// Schema migrations applied while opening (0 when the database was up to date).
    pub migrations_applied: usize,
    /// The schema version after opening.
    pub schema_version: i64,
}

impl Database {
    /// Reads a `--db` value: PostgreSQL for a `postgres://` or `postgresql://` URL (any case),
    /// otherwise a SQLite path, optionally written `sqlite://PATH`.
    pub fn parse(db: &str) -> Database {
        let scheme = db.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Database::Postgres(db.to_string()),
            Some("sqlite") => Database::Sqlite(PathBuf::from(&db["sqlite://".len()..])),
            _ => Database::Sqlite(PathBuf::from(db)),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Safe to print and log: a PostgreSQL URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(url) => redact_url(url),
        }
    }

    /// Opens the database, creating it (SQLite) and applying pending migrations.
    pub async fn open(&self, opts: &OpenOptions) -> Result<Opened, StoreError> {
        match self {
            Database::Sqlite(path) => {
                let s = SqliteStore::open(path, opts.sqlite.clone()).await?;
                let (migrations_applied, schema_version) =
                    (s.migrations_applied(), s.schema_version().await?);
                Ok(Opened {
                    store: Arc::new(s),
                    migrations_applied,
                    schema_version,
                })
            }
            Database::Postgres(url) => {
                let s = PgStore::connect(url, opts.postgres.clone()).await?;
                let (migrations_applied, schema_version) =
                    (s.migrations_applied(), s.schema_version().await?);
                Ok(Opened {
                    store: Arc::new(s),
                    migrations_applied,
                    schema_version,
                })
            }
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.backend(), self.redacted())
    }
}

/// Hides the password of `scheme://user:password@host/...` and any `password=` parameter.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return redact_params(url, ' '),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_params(tail, '&'))
}

/// Replaces the value of every `password=` parameter in `s` (parameters split by `sep`).
fn redact_params(s: &str, sep: char) -> String {
    s.split(sep)
        .map(|part| {
            let key_start = part.rfind(['?', ' ']).map_or(0, |i| i + 1);
            match part[key_start..].split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{}password=***", &part[..key_start])
                }
                _ => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// Opens the store named by `db` with default options (see [`Database::parse`]).
pub async fn open_store(db: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Database::parse(db)
        .open(&OpenOptions::default())
        .await?
        .store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_backend_from_the_name() {
        assert_eq!(
            Database::parse("data/mm.sqlite3"),
            Database::Sqlite("data/mm.sqlite3".into())
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/mm.db"),
            Database::Sqlite("/var/lib/mm.db".into())
        );
        for url in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "POSTGRES://u@h/db",
        ] {
            assert_eq!(Database::parse(url), Database::Postgres(url.into()));
        }
    }

    #[test]
    fn passwords_never_print() {
        let cases = [
            (
                "postgres://mm:s3cret@db:5432/mm",
                "postgres://mm:***@db:5432/mm",
            ),
            ("postgres://mm@db/mm", "postgres://mm@db/mm"),
            (
                "postgres://db/mm?password=s3cret&sslmode=disable",
                "postgres://db/mm?password=***&sslmode=disable",
            ),
            ("postgres://mm:p@ss@db/mm", "postgres://mm:***@db/mm"),
            (
                "postgresql://h/test?options=-c%20search_path%3Dx&PASSWORD=s3cret",
                "postgresql://h/test?options=-c%20search_path%3Dx&password=***",
            ),
        ];
        for (url, want) in cases {
            let shown = Database::parse(url).redacted();
            assert_eq!(shown, want, "{url}");
            assert!(!shown.contains("s3cret") && !shown.contains("p@ss"));
        }
    }
}
