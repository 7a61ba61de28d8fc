//! `marketmeter migrate`, and the one place that opens a database for the CLI (so `serve` and
//! `migrate` report the same way and give the same advice when the database is unreachable).

use crate::config::MigrateArgs;
use anyhow::{Context, Result};
use marketmeter_store::{Database, OpenOptions, Opened};

/// Opens `db`, applying pending migrations, with an error that says what to check.
pub async fn open(db: &Database, opts: &OpenOptions) -> Result<Opened> {
    let opened = db.open(opts).await.with_context(|| match db {
        Database::Sqlite(_) => format!("opening the database {db}"),
        Database::Postgres(_) => format!(
            "opening the database {db}; is PostgreSQL running there, and may this user \
             connect and create tables?"
        ),
    })?;
    if opened.migrations_applied > 0 {
        tracing::info!(
            applied = opened.migrations_applied,
            version = opened.schema_version,
            "database schema migrated"
        );
    }
    Ok(opened)
}

pub fn run(args: MigrateArgs) -> Result<()> {
    let (db, opts) = args.resolve()?;
    let opened = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(open(&db, &opts))?;
    match opened.migrations_applied {
        0 => println!(
            "{db}: schema is up to date (version {})",
            opened.schema_version
        ),
        n => println!(
            "{db}: applied {n} migration{} (schema version {})",
            if n == 1 { "" } else { "s" },
            opened.schema_version
        ),
    }
    Ok(())
}
