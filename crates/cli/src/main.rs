//! `marketmeter`: a self-hostable, wire-compatible AWS Marketplace Metering Service.

mod admin_client;
mod audit;
mod controls_client;
mod migrate;
mod report;
mod serve;

use clap::{Parser, Subcommand};
use marketmeter::config;

#[derive(Debug, Parser)]
#[command(
    name = "marketmeter",
    version,
    about = "A self-hostable, wire-compatible AWS Marketplace Metering Service",
    long_about = "A self-hostable, wire-compatible AWS Marketplace Metering Service.\n\n\
        Point any AWS SDK or the AWS CLI at it with AWS_ENDPOINT_URL_MARKETPLACE_METERING=http://127.0.0.1:7171.\n\
        Quick start: `marketmeter serve --demo` prints ready-to-paste commands."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the metering service.
    Serve(Box<config::ServeArgs>),
    /// Create or upgrade a database's schema (serve does this at start too) and exit.
    Migrate(config::MigrateArgs),
    /// Talk to a running server's admin API.
    Admin(admin_client::AdminArgs),
    /// Usage and estimated charges from a running server, as a table, JSON or CSV.
    Report(report::ReportArgs),
    /// The audit trail of metering API calls from a running server: list or export.
    Audit(audit::AuditArgs),
    // `marketmeter bench --help` text: the about/long_about of `BenchArgs`.
    Bench(marketmeter_bench::BenchArgs),
    /// Check a seed file without starting a server.
    CheckSeed {
        /// The TOML seed file.
        file: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Migrate(args) => migrate::run(args),
        Command::Admin(args) => admin_client::run(args),
        Command::Report(args) => report::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Bench(args) => marketmeter_bench::run(args, config::read_seed),
        Command::CheckSeed { file } => config::read_seed(&file).and_then(|s| {
            s.check()?;
            println!(
                "{}: {} accounts, {} keys, {} products, {} agreements — ok",
                file.display(),
                s.accounts.len(),
                s.keys.len(),
                s.products.len(),
                s.agreements.len()
            );
            Ok(())
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
