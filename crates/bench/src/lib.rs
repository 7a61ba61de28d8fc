//! `marketmeter bench`: a load generator for the metering API (SigV4-signed BatchMeterUsage and
//! MeterUsage with unique keys, every answer checked), the HTTP ceiling server it is compared
//! with, and the generator of the benchmark seed. The `marketmeter` binary only parses the
//! command line and calls [`run`].

pub mod ceiling;
pub mod check;
pub mod fill;
pub mod load;
pub mod report;
pub mod seedgen;
pub mod signer;
pub mod world;

use anyhow::{bail, Context, Result};
use marketmeter_domain::seed::Seed;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use world::{BatchPlan, IdentityStyle, MeterPlan};

/// The longest run accepted: benchmarks are bounded.
const MAX_DURATION: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    about = "Measure a metering endpoint: signed, unique, checked load (localhost only)",
    long_about = "Sends SigV4-signed BatchMeterUsage (25 records per request) and/or MeterUsage calls \
        at a fixed concurrency, one keep-alive HTTP/1.1 connection per worker, to an endpoint on this \
        machine. Every record has a key (identity, dimension, hour) never sent before in the run, so \
        a server on a FRESH database must accept every one; every answer is checked (HTTP 200, all \
        records Success with a MeteringRecordId, no UnprocessedRecords) and anything else is counted \
        as an error. Prints requests/s, records/s, p50/p99/p99.9 latency and errors (or JSON with \
        --json); exits 1 when any error was counted.\n\n\
        The credentials, products and the key space come from a seed file (default \
        tests/bench/seed.toml, made by `marketmeter bench seed`); start the server with the same \
        seed. Timestamps assume the server's default windows (24 h BatchMeterUsage, 6 h MeterUsage)."
)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Serve the HTTP ceiling: read each body, answer a fixed response as big as the real one.
    Ceiling(CeilingArgs),
    /// Print the benchmark seed (accounts, keys, products, agreements) as TOML.
    Seed(seedgen::WorldSize),
    /// Bulk-load synthetic usage records into a database (no server; for growth measurements).
    Fill(fill::FillArgs),
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Endpoint on this machine (loopback addresses only).
    #[arg(
        long,
        env = "MARKETMETER_ENDPOINT",
        default_value = "http://127.0.0.1:7171"
    )]
    pub endpoint: String,
    /// Seed file with the credentials, products and agreements to use.
    #[arg(long, default_value = "tests/bench/seed.toml")]
    pub seed: std::path::PathBuf,
    /// Which operations to send; with `both`, workers alternate between the two.
    #[arg(long, value_enum, default_value_t = Operations::Batch)]
    pub op: Operations,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// How long to send (at most 10m), e.g. `20s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Send this long before measuring (not counted; uses the same unique keys), e.g. `2s`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Stop after this many requests (in addition to --duration and the seed's key space).
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Customer identity of BatchMeterUsage records.
    #[arg(long, value_enum, default_value_t = IdentityStyle::All)]
    pub identity: IdentityStyle,
    /// SaaS product for BatchMeterUsage (default: the seed's first SaaS product).
    #[arg(long)]
    pub batch_product: Option<String>,
    /// AMI/container product for MeterUsage (default: the seed's first one with workloads).
    #[arg(long)]
    pub meter_product: Option<String>,
    /// Signing region of the seller's BatchMeterUsage calls (MeterUsage uses each workload's).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// A record status that counts as taken besides Success (repeatable), for peers that cannot
    /// subscribe customers, e.g. `--accept-status CustomerNotSubscribed` for moto.
    #[arg(long = "accept-status")]
    pub accept_status: Vec<String>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operations {
    Batch,
    Meter,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    /// Address to serve on (`:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:7199")]
    pub listen: SocketAddr,
    /// Seed whose requests the canned answers mirror (same as the load generator's).
    #[arg(long, default_value = "tests/bench/seed.toml")]
    pub seed: std::path::PathBuf,
    /// Identity style of the mirrored BatchMeterUsage records (same as the load's --identity).
    #[arg(long, value_enum, default_value_t = IdentityStyle::All)]
    pub identity: IdentityStyle,
}

/// Runs `marketmeter bench ...`; `read_seed` is the CLI's seed reader (one parser for seeds).
pub fn run(args: BenchArgs, read_seed: impl Fn(&std::path::Path) -> Result<Seed>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let now = time::OffsetDateTime::now_utc();
    match args.command {
        Some(BenchCommand::Seed(size)) => {
            print!("{}", seedgen::render(size));
            Ok(())
        }
        Some(BenchCommand::Fill(f)) => {
            let seed = read_seed(&f.seed)?;
            runtime.block_on(fill::run(f, seed))
        }
        Some(BenchCommand::Ceiling(c)) => {
            let seed = read_seed(&c.seed)?;
            let batch = BatchPlan::from_seed(&seed, None, c.identity, "us-east-1", now)?;
            let meter = MeterPlan::from_seed(&seed, None, now)?;
            let answers = ceiling::Answers::new(&batch, &meter)?;
            runtime.block_on(ceiling::serve(c.listen, answers))
        }
        None => {
            let a = args.load;
            if a.duration + a.warmup > MAX_DURATION {
                bail!("--warmup plus --duration is at most {MAX_DURATION:?}");
            }
            let seed = read_seed(&a.seed)?;
            let batch = match a.op {
                Operations::Batch | Operations::Both => Some(BatchPlan::from_seed(
                    &seed,
                    a.batch_product.as_deref(),
                    a.identity,
                    &a.region,
                    now,
                )?),
                Operations::Meter => None,
            };
            let meter = match a.op {
                Operations::Meter | Operations::Both => Some(MeterPlan::from_seed(
                    &seed,
                    a.meter_product.as_deref(),
                    now,
                )?),
                Operations::Batch => None,
            };
            let load = load::Load {
                addr: loopback(&a.endpoint)?,
                concurrency: a.concurrency as usize,
                warmup: a.warmup,
                duration: a.duration,
                max_requests: a.max_requests,
                batch,
                meter,
                accepted_statuses: a.accept_status,
            };
            let summary = runtime.block_on(load::run(load))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.table());
            }
            if summary.error_count > 0 {
                bail!("{} errors (see above)", summary.error_count);
            }
            Ok(())
        }
    }
}

/// The endpoint's address, refused unless it is on this machine (benchmarks stay local).
fn loopback(endpoint: &str) -> Result<SocketAddr> {
    let authority = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("--endpoint {endpoint:?}: use http://HOST:PORT"))?
        .trim_end_matches('/');
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .with_context(|| format!("--endpoint {endpoint:?}: no such host:port"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*a),
        _ => bail!("--endpoint {endpoint}: the load generator only sends to this machine (127.0.0.1, ::1, localhost)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints() {
        assert_eq!(
            loopback("http://127.0.0.1:7171").unwrap(),
            "127.0.0.1:7171".parse().unwrap()
        );
        assert!(loopback("http://[::1]:80/").is_ok());
        assert!(loopback("http://10.0.0.1:7171").is_err());
        assert!(loopback("https://127.0.0.1:7171").is_err());
        assert!(loopback("127.0.0.1:7171").is_err());
    }
}
