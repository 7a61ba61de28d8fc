//! Server configuration: defaults that work with no file, then a TOML file, then environment
//! variables, then flags (clap reads the `MARKETMETER_*` variables and flags; they beat the file).

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use marketmeter_domain::{MeteringConfig, Windows};
use marketmeter_store::{Database, OpenOptions};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7171";
pub const DEFAULT_DATA_DIR: &str = ".marketmeter";
pub const DB_FILE: &str = "marketmeter.sqlite3";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthArg {
    /// Verify every SigV4 signature.
    Sigv4,
    /// Skip signature verification (local experiments only).
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockArg {
    /// The machine's clock.
    System,
    /// Starts at the machine's time, then moves only through the admin API (tests).
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file; its keys are the long flag names with '_' for '-'.
    #[arg(long, env = "MARKETMETER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on. [default: 127.0.0.1:7171]
    #[arg(long, env = "MARKETMETER_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DbArgs,
    /// Seed file(s) to load at start (idempotent); repeat the flag for several.
    #[arg(long = "seed", env = "MARKETMETER_SEED", value_delimiter = ',')]
    pub seeds: Vec<PathBuf>,
    /// Load the built-in demo world and print ready-to-paste AWS CLI commands.
    #[arg(long)]
    pub demo: bool,
    /// Authentication of the AWS endpoint. [default: sigv4]
    #[arg(long, env = "MARKETMETER_AUTH", value_enum)]
    pub auth: Option<AuthArg>,
    /// Bearer token for the admin API; generated and printed when unset.
    #[arg(long, env = "MARKETMETER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// BatchMeterUsage: how long after the event a record is accepted. [default: 24h]
    #[arg(long, env = "MARKETMETER_BATCH_WINDOW")]
    pub batch_window: Option<humantime::Duration>,
    /// MeterUsage: how long after the event a record is accepted. [default: 6h]
    #[arg(long, env = "MARKETMETER_METER_WINDOW")]
    pub meter_window: Option<humantime::Duration>,
    /// BatchMeterUsage: previous-month records are accepted until this long into the 1st (UTC). [default: 6h]
    #[arg(long, env = "MARKETMETER_MONTH_END_GRACE")]
    pub month_end_grace: Option<humantime::Duration>,
    /// How far in the future a usage timestamp may be. [default: 5m]
    #[arg(long, env = "MARKETMETER_FUTURE_SKEW")]
    pub future_skew: Option<humantime::Duration>,
    /// Largest accepted difference between a request's X-Amz-Date and now. [default: 15m]
    #[arg(long, env = "MARKETMETER_SIGNATURE_SKEW")]
    pub signature_skew: Option<humantime::Duration>,
    /// How long a registration token resolves. [default: 4h]
    #[arg(long, env = "MARKETMETER_TOKEN_TTL")]
    pub token_ttl: Option<humantime::Duration>,
    /// Registration tokens resolve once only (AWS: reusable until they expire).
    #[arg(long, env = "MARKETMETER_SINGLE_USE_TOKENS")]
    pub single_use_tokens: Option<bool>,
    /// Log format. [default: text]
    #[arg(long, env = "MARKETMETER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// URL that receives seller notifications (SNS-style JSON: subscribe-success,
    /// unsubscribe-pending, entitlement-updated, ...); repeat the flag for several.
    #[arg(long = "webhook", env = "MARKETMETER_WEBHOOKS", value_delimiter = ',')]
    pub webhooks: Vec<String>,
    /// How many times a notification is tried per webhook before it is logged failed (back-off
    /// 0.5 s, doubling). [default: 5]
    #[arg(long, env = "MARKETMETER_WEBHOOK_ATTEMPTS")]
    pub webhook_attempts: Option<u32>,
    /// Connections served at once; more clients wait in the listen backlog. [default: 1024]
    #[arg(long, env = "MARKETMETER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers (also the idle keep-alive
    /// limit). [default: 10s]
    #[arg(long, env = "MARKETMETER_HEADER_TIMEOUT")]
    pub header_timeout: Option<humantime::Duration>,
    /// How long a client may take to send a request's body. [default: 30s]
    #[arg(long, env = "MARKETMETER_BODY_TIMEOUT")]
    pub body_timeout: Option<humantime::Duration>,
    /// The metering rules' clock; `manual` lets the admin API set and advance it. [default: system]
    #[arg(long, env = "MARKETMETER_CLOCK", value_enum)]
    pub clock: Option<ClockArg>,
    /// Enforce AWS's request quotas (10/10/5 per second per account and region for
    /// BatchMeterUsage/MeterUsage/RegisterUsage) with ThrottlingException. [default: false]
    #[arg(long, env = "MARKETMETER_AWS_QUOTAS")]
    pub aws_quotas: Option<bool>,
}

/// Which database, shared by `serve` and `migrate`.
#[derive(Debug, Default, Args)]
pub struct DbArgs {
    /// Database: a SQLite file path (or sqlite://PATH), or a PostgreSQL URL
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB (the schema is the search_path; add
    /// ?options=-c%20search_path%3DNAME to choose one, created if missing).
    /// [default: <data-dir>/marketmeter.sqlite3]
    #[arg(long, env = "MARKETMETER_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Directory for the default SQLite database. [default: .marketmeter]
    #[arg(long, env = "MARKETMETER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL: most connections this instance opens. [default: 16]
    #[arg(long, env = "MARKETMETER_DB_POOL")]
    pub db_pool: Option<usize>,
}

/// `marketmeter migrate`: bring a database's schema up to date without serving.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// TOML configuration file (only its database keys are used).
    #[arg(long, env = "MARKETMETER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub database: DbArgs,
}

impl MigrateArgs {
    pub fn resolve(self) -> Result<(Database, OpenOptions)> {
        let file = load_file(self.config.as_deref())?;
        self.database.resolve(&file)
    }
}

impl DbArgs {
    /// Flags and environment beat the file; then the default SQLite file in the data dir.
    fn resolve(self, file: &FileConfig) -> Result<(Database, OpenOptions)> {
        let data_dir = self
            .data_dir
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let db = match self.db.or_else(|| file.db.clone()) {
            Some(name) if name.trim().is_empty() => {
                bail!("--db is empty; give a SQLite file path or a postgres:// URL")
            }
            Some(name) => Database::parse(&name),
            None => Database::Sqlite(data_dir.join(DB_FILE)),
        };
        let mut opts = OpenOptions::default();
        if let Some(n) = self.db_pool.or(file.db_pool) {
            if n == 0 {
                bail!("db_pool must be at least 1");
            }
            opts.postgres.max_connections = n;
        }
        Ok((db, opts))
    }
}

fn load_file(path: Option<&Path>) -> Result<FileConfig> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("config file {} is invalid", p.display()))
        }
        None => Ok(FileConfig::default()),
    }
}

/// What a configuration file alone gives (no flags; the environment is not read): the same
/// checks as `serve --config FILE`. For `fuzz/` and tests.
pub fn serve_config_from_toml(text: &str) -> Result<ServeConfig> {
    let file: FileConfig = toml::from_str(text).context("config file is invalid")?;
    ServeArgs::default().resolve_with(file)
}

/// The same knobs as a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    db: Option<String>,
    data_dir: Option<PathBuf>,
    db_pool: Option<usize>,
    #[serde(default)]
    seed: Vec<PathBuf>,
    auth: Option<AuthArg>,
    admin_token: Option<String>,
    batch_window: Option<String>,
    meter_window: Option<String>,
    month_end_grace: Option<String>,
    future_skew: Option<String>,
    signature_skew: Option<String>,
    token_ttl: Option<String>,
    single_use_tokens: Option<bool>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    webhooks: Vec<String>,
    webhook_attempts: Option<u32>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    clock: Option<ClockArg>,
    aws_quotas: Option<bool>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: Database,
    pub db_options: OpenOptions,
    pub seeds: Vec<PathBuf>,
    pub demo: bool,
    pub auth: AuthArg,
    pub admin_token: Option<String>,
    pub metering: MeteringConfig,
    pub signature_skew: Duration,
    pub log_format: LogFormat,
    pub webhooks: Vec<String>,
    pub webhook_attempts: u32,
    pub limits: marketmeter_server::Limits,
    pub clock: ClockArg,
    pub aws_quotas: bool,
}

fn duration(
    flag: Option<humantime::Duration>,
    file: Option<&str>,
    key: &str,
    default: Duration,
) -> Result<Duration> {
    let std = match (flag, file) {
        (Some(d), _) => *d,
        (None, Some(s)) => humantime::parse_duration(s).with_context(|| {
            format!("config key {key}: {s:?} is not a duration like 24h, 30m or 90s")
        })?,
        (None, None) => return Ok(default),
    };
    match Duration::try_from(std) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => bail!("{key} is too large (at most 100 years)"),
    }
}

/// Longest accepted duration: the server adds and subtracts these to and from dates, which
/// must stay within the calendar (year 9999); 100 years is more than any window needs.
const MAX_DURATION: Duration = Duration::days(36_525);

impl ServeArgs {
    pub fn resolve(self) -> Result<ServeConfig> {
        let file = load_file(self.config.as_deref())?;
        self.resolve_with(file)
    }

    /// These flags over `file`'s keys over the defaults.
    fn resolve_with(self, file: FileConfig) -> Result<ServeConfig> {
        let (db, db_options) = self.database.resolve(&file)?;
        let defaults = MeteringConfig::default();
        let w = defaults.windows;
        let windows = Windows {
            batch_lookback: duration(
                self.batch_window,
                file.batch_window.as_deref(),
                "batch_window",
                w.batch_lookback,
            )?,
            meter_lookback: duration(
                self.meter_window,
                file.meter_window.as_deref(),
                "meter_window",
                w.meter_lookback,
            )?,
            month_end_grace: duration(
                self.month_end_grace,
                file.month_end_grace.as_deref(),
                "month_end_grace",
                w.month_end_grace,
            )?,
            future_skew: duration(
                self.future_skew,
                file.future_skew.as_deref(),
                "future_skew",
                w.future_skew,
            )?,
        };
        let limits = limits(
            self.max_connections.or(file.max_connections),
            (self.header_timeout, file.header_timeout.as_deref()),
            (self.body_timeout, file.body_timeout.as_deref()),
        )?;
        let mut seeds = file.seed;
        seeds.extend(self.seeds);
        let mut webhooks = file.webhooks;
        webhooks.extend(self.webhooks);
        for url in &webhooks {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("webhook {url:?} must be an http:// or https:// URL");
            }
        }
        let webhook_attempts = self.webhook_attempts.or(file.webhook_attempts).unwrap_or(5);
        if webhook_attempts == 0 {
            bail!("webhook_attempts must be at least 1");
        }
        Ok(ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            db,
            db_options,
            seeds,
            demo: self.demo,
            auth: self.auth.or(file.auth).unwrap_or(AuthArg::Sigv4),
            admin_token: self
                .admin_token
                .or(file.admin_token)
                .filter(|t| !t.is_empty()),
            metering: MeteringConfig {
                windows,
                registration_token_ttl: duration(
                    self.token_ttl,
                    file.token_ttl.as_deref(),
                    "token_ttl",
                    defaults.registration_token_ttl,
                )?,
                single_use_tokens: self
                    .single_use_tokens
                    .or(file.single_use_tokens)
                    .unwrap_or(false),
            },
            signature_skew: duration(
                self.signature_skew,
                file.signature_skew.as_deref(),
                "signature_skew",
                Duration::minutes(15),
            )?,
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            webhooks,
            webhook_attempts,
            limits,
            clock: self.clock.or(file.clock).unwrap_or(ClockArg::System),
            aws_quotas: self.aws_quotas.or(file.aws_quotas).unwrap_or(false),
        })
    }
}

type DurationSources<'a> = (Option<humantime::Duration>, Option<&'a str>);

/// Connection limits; zero values are refused (they would stop the server from serving).
fn limits(
    max_connections: Option<usize>,
    header: DurationSources,
    body: DurationSources,
) -> Result<marketmeter_server::Limits> {
    let d = marketmeter_server::Limits::default();
    let positive = |flag, file, key: &str, default: std::time::Duration| -> Result<_> {
        let v = duration(flag, file, key, Duration::try_from(default)?)?;
        if v <= Duration::ZERO {
            bail!("{key} must be longer than zero");
        }
        Ok(std::time::Duration::try_from(v)?)
    };
    let max_connections = max_connections.unwrap_or(d.max_connections);
    if max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    Ok(marketmeter_server::Limits {
        max_connections,
        header_timeout: positive(header.0, header.1, "header_timeout", d.header_timeout)?,
        body_timeout: positive(body.0, body.1, "body_timeout", d.body_timeout)?,
    })
}

/// Reads a TOML seed file. TOML datetimes become RFC 3339 strings first, so the domain's
/// seed type stays format-agnostic.
pub fn read_seed(path: &Path) -> Result<marketmeter_domain::seed::Seed> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading seed file {}", path.display()))?;
    parse_seed(&text).with_context(|| format!("seed file {} is invalid", path.display()))
}

pub fn parse_seed(text: &str) -> Result<marketmeter_domain::seed::Seed> {
    Ok(seed_value(text)?.try_into()?)
}

/// A TOML seed as the JSON document `POST /admin/v1/catalog` takes (checked first).
pub fn seed_as_json(text: &str) -> Result<serde_json::Value> {
    let value = seed_value(text)?;
    let seed: marketmeter_domain::seed::Seed = value.clone().try_into()?;
    seed.check()?;
    Ok(serde_json::to_value(value)?)
}

fn seed_value(text: &str) -> Result<toml::Value> {
    let mut value: toml::Value = toml::from_str(text)?;
    datetimes_to_strings(&mut value);
    Ok(value)
}

fn datetimes_to_strings(v: &mut toml::Value) {
    match v {
        toml::Value::Datetime(d) => *v = toml::Value::String(d.to_string()),
        toml::Value::Array(a) => a.iter_mut().for_each(datetimes_to_strings),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| datetimes_to_strings(v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_seed_example_parses() {
        let seed = parse_seed(
            r#"
[[accounts]]
id = "111122223333"
name = "Acme"
[[keys]]
account = "111122223333"
access_key_id = "AKIAACMESELLER000001"
secret_access_key = "secret"
session_token = "token"
resource = "i-0123456789abcdef0"
platform = "ec2"
resource_region = "us-east-1"
[[products]]
code = "acme-saas-1"
seller = "111122223333"
kind = "saas"
fulfillment_url = "http://127.0.0.1:8080/register"
dimensions = [{ name = "requests", unit = "count", price = "0.0001" }, { name = "storage_gb" }]
[[agreements]]
product = "acme-saas-1"
customer_account = "444455556666"
customer_identifier = "cust-abc"
license_arn = "arn:aws:license-manager::111122223333:license/l-0a1b2c3d4e5f"
agreement_id = "agmt-0001"
status = "active"
starts = 2026-01-01T00:00:00Z
ends = 2027-01-01T00:00:00Z
"#,
        )
        .unwrap();
        seed.check().unwrap();
        assert_eq!(seed.agreements[0].starts.unwrap().year(), 2026);
        assert_eq!(seed.products[0].dimensions.len(), 2);
    }

    #[test]
    fn demo_seed_is_valid() {
        parse_seed(include_str!("demo.toml"))
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn limits_come_from_the_file_and_refuse_zero() {
        let l = limits(Some(8), (None, Some("2s")), (None, Some("500ms"))).unwrap();
        assert_eq!(l.max_connections, 8);
        assert_eq!(l.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(l.body_timeout, std::time::Duration::from_millis(500));
        assert_eq!(
            limits(None, (None, None), (None, None)).unwrap(),
            marketmeter_server::Limits::default()
        );
        assert!(limits(Some(0), (None, None), (None, None)).is_err());
        assert!(limits(None, (None, Some("0s")), (None, None)).is_err());
        assert!(limits(None, (None, None), (None, Some("soon"))).is_err());
    }

    #[test]
    fn a_config_file_alone_resolves_like_serve_config() {
        let c = serve_config_from_toml(
            "listen = \"0.0.0.0:7171\"\nbatch_window = \"1h 30m\"\nwebhooks = [\"http://x/\"]\n\
             db = \"postgres://u@h/db\"\nmax_connections = 8\nadmin_token = \"\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7171);
        assert_eq!(c.metering.windows.batch_lookback, Duration::minutes(90));
        assert_eq!(c.db.backend(), "postgres");
        assert_eq!(c.limits.max_connections, 8);
        assert_eq!(c.admin_token, None, "an empty token means: generate one");
        assert!(serve_config_from_toml("webhooks = [\"ftp://x\"]").is_err());
        assert!(serve_config_from_toml("listen = 7171").is_err());
        assert!(serve_config_from_toml("lsiten = \"0.0.0.0:1\"").is_err());
    }

    /// Found by the config_file fuzz target: durations the server could not add to a date
    /// (a token's expiry, the month-end cutoff, SigV4's skew bounds) panicked at request time.
    #[test]
    fn durations_past_the_calendar_are_refused() {
        for key in [
            "batch_window",
            "meter_window",
            "month_end_grace",
            "future_skew",
            "signature_skew",
            "token_ttl",
            "header_timeout",
            "body_timeout",
        ] {
            let err = serve_config_from_toml(&format!("{key} = \"100000y\"")).unwrap_err();
            assert!(format!("{err:#}").contains("too large"), "{key}: {err:#}");
            assert!(
                serve_config_from_toml(&format!("{key} = \"100y\"")).is_ok(),
                "{key}"
            );
        }
        let c = serve_config_from_toml("token_ttl = \"100y\"\nmonth_end_grace = \"100y\"").unwrap();
        let now = time::macros::datetime!(2026-06-01 03:00 UTC);
        assert!(now + c.metering.registration_token_ttl > now);
        let last_month = marketmeter_wire::EpochTime::from_secs(now.unix_timestamp() - 4 * 3600);
        assert!(c.metering.windows.check_batch(last_month, now).is_ok());
    }

    #[test]
    fn unknown_seed_keys_are_refused() {
        assert!(parse_seed("[[accounts]]\nid = \"1\"\nnmae = \"typo\"\n").is_err());
    }
}
