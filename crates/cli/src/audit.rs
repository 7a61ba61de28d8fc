//! `marketmeter audit`: the audit trail of metering API calls from a running server's
//! `GET /admin/v1/audit` (a page, as a table) and `GET /admin/v1/audit/export` (everything
//! matching, streamed to a file or standard output as JSON lines or CSV).

use crate::admin_client::{urlencode, ServerArgs};
use crate::report::{copy_with_progress, fetch, instant, text};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Which events (every flag narrows).
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// BatchMeterUsage, MeterUsage, RegisterUsage, ResolveCustomer or Unknown.
    #[arg(long)]
    pub operation: Option<String>,
    /// The calling account (the access key's account).
    #[arg(long)]
    pub account: Option<String>,
    /// From this time on (inclusive): an RFC 3339 time or a date (midnight UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time (exclusive): an RFC 3339 time or a date (midnight UTC).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// One page of events, oldest first, as a table (or the page as JSON with --json).
    List {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// Events per page (1 to 1000; default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after this cursor (printed under a full page).
        #[arg(long)]
        cursor: Option<String>,
        /// Print the page as the API answers it (every field, parameters included).
        #[arg(long)]
        json: bool,
    },
    /// Every matching event, streamed.
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn url(
    server: &ServerArgs,
    path: &str,
    f: &AuditFilterArgs,
    extra: &[(&str, String)],
) -> Result<String> {
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("operation", &f.operation), ("account", &f.account)] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    for (k, v) in [("from", &f.from), ("to", &f.to)] {
        if let Some(v) = v {
            q.push((k, instant(k, v)?));
        }
    }
    q.extend(extra.iter().cloned());
    let query: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    Ok(format!(
        "{}{path}?{}",
        server.endpoint.trim_end_matches('/'),
        query.join("&")
    ))
}

pub fn run(args: AuditArgs) -> Result<()> {
    match args.command {
        AuditCommand::List {
            filter,
            limit,
            cursor,
            json,
        } => {
            let mut extra = Vec::new();
            extra.extend(limit.map(|l| ("limit", l.to_string())));
            extra.extend(cursor.map(|c| ("cursor", c)));
            let url = url(&args.server, "/admin/v1/audit", &filter, &extra)?;
            let page: Value = fetch(&args.server, &url)?
                .read_json()
                .context("the answer is not JSON")?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                print_table(&page, &mut out)?;
            }
            if let Some(next) = page["next_cursor"].as_str() {
                eprintln!("more events: add --cursor {next}");
            }
        }
        AuditCommand::Export {
            filter,
            format,
            output,
        } => {
            let format = match format {
                ExportFormat::Jsonl => "jsonl",
                ExportFormat::Csv => "csv",
            };
            let url = url(
                &args.server,
                "/admin/v1/audit/export",
                &filter,
                &[("format", format.to_string())],
            )?;
            let mut reader = fetch(&args.server, &url)?.into_reader();
            match output {
                Some(path) => {
                    let mut file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    copy_with_progress(&mut reader, &mut file)?;
                    file.sync_all()?;
                }
                None => {
                    copy_with_progress(&mut reader, &mut std::io::stdout().lock())?;
                }
            }
        }
    }
    Ok(())
}

/// The columns of the table (user agent and parameters are in `--json` and the export).
const COLUMNS: [&str; 10] = [
    "seq",
    "time",
    "operation",
    "outcome",
    "error_code",
    "account",
    "access_key_id",
    "region",
    "source_ip",
    "request_id",
];

fn print_table(page: &Value, out: &mut impl Write) -> Result<()> {
    let events = page["events"]
        .as_array()
        .context("the answer has no events")?;
    if events.is_empty() {
        writeln!(out, "no events")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| COLUMNS.iter().map(|c| text(&e[*c])).collect())
        .collect();
    let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(COLUMNS.to_vec()))?;
    for r in &rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
