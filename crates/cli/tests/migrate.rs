//! `marketmeter migrate` on both backends, from flags and from a config file; a PostgreSQL
//! password never shows in its output.

mod common;

use common::Db;
use std::process::{Command, Output};

fn migrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_marketmeter"))
        .arg("migrate")
        .args(args)
        .env_remove("MARKETMETER_DB")
        .env_remove("MARKETMETER_CONFIG")
        .output()
        .expect("run marketmeter migrate")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn migrates_then_is_up_to_date(db: &Db, backend: &str) {
    let first = stdout(&migrate(&["--db", &db.arg()]));
    assert!(first.starts_with(&format!("{backend} ")), "{first}");
    // "applied N migrations (schema version V)": every migration, from an empty database.
    let version = first
        .trim_end()
        .strip_suffix(')')
        .and_then(|s| s.rsplit_once("(schema version "))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{first}"));
    let count = marketmeter_testpg::migration_files(backend);
    let plural = if count == 1 { "" } else { "s" };
    assert!(
        first.contains(&format!("applied {count} migration{plural} (")),
        "{first}"
    );
    let again = stdout(&migrate(&["--db", &db.arg()]));
    assert!(
        again.contains(&format!("schema is up to date (version {version})")),
        "{again}"
    );
}

#[test]
fn migrates_sqlite_once() {
    migrates_then_is_up_to_date(&Db::sqlite(), "sqlite");
}

#[test]
fn migrates_postgres_once_creating_the_schema() {
    let Some(base) = marketmeter_testpg::base_url() else {
        return;
    };
    // A schema that does not exist yet: migrate creates it.
    let db = Db::Postgres(marketmeter_testpg::Schema::reserve(base));
    migrates_then_is_up_to_date(&db, "postgres");
}

#[test]
fn reads_the_database_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marketmeter.toml");
    let db = dir.path().join("from-config.sqlite3");
    std::fs::write(&file, format!("db = {:?}\n", db.display().to_string())).unwrap();
    let out = stdout(&migrate(&["--config", file.to_str().unwrap()]));
    assert!(out.contains("applied "), "{out}");
    assert!(db.exists());
}

#[test]
fn an_unreachable_postgres_fails_clearly_without_showing_the_password() {
    let o = migrate(&[
        "--db",
        "postgres://mm:hunter2-secret@127.0.0.1:1/mm?connect_timeout=2",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is PostgreSQL running there"), "{err}");
    assert!(err.contains("postgres://mm:***@127.0.0.1:1/mm"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
