//! `marketmeter report`: usage and estimated charges from a running server's
//! `GET /admin/v1/reports/usage`, printed as a table or exported as JSON or CSV. The export is
//! streamed to its destination as it arrives, with a progress spinner on a terminal.

use crate::admin_client::{urlencode, ServerArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A readable table with a totals line.
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Start of the range (inclusive): an RFC 3339 time or a date (midnight UTC).
    #[arg(long)]
    pub from: String,
    /// End of the range (exclusive): an RFC 3339 time or a date (midnight UTC).
    #[arg(long)]
    pub to: String,
    /// hour, day or month (UTC).
    #[arg(long, default_value = "day")]
    pub period: String,
    /// Columns to group by besides the period: any of product, customer, dimension ("" for
    /// totals per period).
    #[arg(long, default_value = "product,customer,dimension")]
    pub group_by: String,
    /// Also split by the value of this allocation tag key.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only this product.
    #[arg(long)]
    pub product_code: Option<String>,
    /// Only this seller account.
    #[arg(long)]
    pub seller_account: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Write the export to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// A date alone means midnight UTC.
pub(crate) fn instant(flag: &str, v: &str) -> Result<String> {
    let is_date = v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    if is_date {
        Ok(format!("{v}T00:00:00Z"))
    } else if v.contains('T') {
        Ok(v.to_string())
    } else {
        bail!("--{flag}: {v:?} is neither a date (2026-01-31) nor an RFC 3339 time (2026-01-31T12:00:00Z)")
    }
}

fn url(args: &ReportArgs) -> Result<String> {
    let format = match args.format {
        ReportFormat::Csv => "csv",
        ReportFormat::Json | ReportFormat::Table => "json",
    };
    let mut q = vec![
        ("from", instant("from", &args.from)?),
        ("to", instant("to", &args.to)?),
        ("period", args.period.clone()),
        ("group_by", args.group_by.clone()),
        ("format", format.to_string()),
    ];
    for (k, v) in [
        ("tag", &args.tag),
        ("product_code", &args.product_code),
        ("seller_account", &args.seller_account),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    let query: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    Ok(format!(
        "{}/admin/v1/reports/usage?{}",
        args.server.endpoint.trim_end_matches('/'),
        query.join("&")
    ))
}

/// GETs `url` from the admin API; an error answer becomes its message.
pub(crate) fn fetch(server: &ServerArgs, url: &str) -> Result<ureq::Body> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .get(url)
        .header("Authorization", &format!("Bearer {}", server.admin_token))
        .call()
        .with_context(|| {
            format!(
                "could not reach {}; is `marketmeter serve` running there?",
                server.endpoint
            )
        })?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let v: Value = body.read_json().unwrap_or(Value::Null);
        let msg = v["error"]["message"].as_str().unwrap_or("request failed");
        bail!("{status}: {msg}");
    }
    Ok(body)
}

pub fn run(args: ReportArgs) -> Result<()> {
    let url = url(&args)?;
    let mut reader = fetch(&args.server, &url)?.into_reader();
    match (args.format, &args.output) {
        (ReportFormat::Table, _) => {
            let mut buf = Vec::new();
            copy_with_progress(&mut reader, &mut buf)?;
            let report: Value = serde_json::from_slice(&buf).context("the report is not JSON")?;
            let mut out = std::io::stdout().lock();
            print_table(&report, &mut out)?;
        }
        (_, Some(path)) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            copy_with_progress(&mut reader, &mut file)?;
            file.sync_all()?;
        }
        (_, None) => {
            let mut out = std::io::stdout().lock();
            copy_with_progress(&mut reader, &mut out)?;
        }
    }
    Ok(())
}

/// Copies the streamed report, showing rows and bytes so far on a terminal (the spinner hides
/// itself when stderr is not one). A body cut off by the server is an error, never a short
/// report taken for complete.
pub(crate) fn copy_with_progress(from: &mut impl Read, to: &mut impl Write) -> Result<u64> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let (mut bytes, mut rows) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from
            .read(&mut buf)
            .context("the download was cut off (the server failed mid-way); run it again")?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        bytes += n as u64;
        rows += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        bar.set_message(format!("{rows} rows, {} KiB", bytes / 1024));
    }
    to.flush()?;
    bar.finish_and_clear();
    Ok(bytes)
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Aligned columns; numbers to the right; a totals line under a rule.
fn print_table(report: &Value, out: &mut impl Write) -> Result<()> {
    let columns: Vec<String> = report["columns"]
        .as_array()
        .context("the report has no columns")?
        .iter()
        .map(text)
        .collect();
    let rows: Vec<Vec<String>> = report["rows"]
        .as_array()
        .context("the report has no rows")?
        .iter()
        .map(|r| columns.iter().map(|c| text(&r[c])).collect())
        .collect();
    let totals = &report["totals"];
    let mut total_row: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "quantity" | "records" | "estimated_charge" => text(&totals[c]),
            _ => String::new(),
        })
        .collect();
    total_row[0] = "total".into();
    let mut widths: Vec<usize> = columns.iter().map(String::len).collect();
    for r in rows.iter().chain(std::iter::once(&total_row)) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let numeric = |c: &str| matches!(c, "quantity" | "records" | "estimated_charge");
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(&columns)
            .map(|((cell, w), c)| {
                if numeric(c) {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&columns))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    writeln!(out, "{}", "-".repeat(rule))?;
    writeln!(out, "{}", line(&total_row))?;
    Ok(())
}
