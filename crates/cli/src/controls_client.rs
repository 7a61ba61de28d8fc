//! `marketmeter admin clock | faults | quotas | reset`: the test controls of a running server.

use crate::admin_client::{call, AdminArgs};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum ClockAction {
    /// Print the clock's mode and time (the default).
    Show,
    /// Set the manual clock to an RFC 3339 time, e.g. 2026-01-31T23:00:00Z.
    Set { time: String },
    /// Move the manual clock forward, e.g. `90m`, `25h`, `1h 30m`.
    Advance { by: humantime::Duration },
}

#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// List the fault rules (the default).
    List,
    /// Add a rule; it applies to every call of the operation unless limited.
    Add {
        /// BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer; omitted: every operation.
        #[arg(long)]
        operation: Option<String>,
        /// throttling, internal_error, unprocessed (BatchMeterUsage only) or latency.
        #[arg(long)]
        kind: String,
        /// Hit each call with this chance (0 to 1).
        #[arg(long)]
        probability: Option<f64>,
        /// Hit only the next N calls, then remove the rule.
        #[arg(long)]
        count: Option<u64>,
        /// Added latency in milliseconds (kind latency).
        #[arg(long)]
        latency_ms: Option<u64>,
    },
    /// Remove one rule by id.
    Remove { id: u64 },
    /// Remove every rule.
    Clear,
}

#[derive(Debug, Subcommand)]
pub enum QuotaAction {
    /// Print whether quotas are enforced, and their rates (the default).
    Show,
    /// Enforce AWS's request quotas (ThrottlingException when exceeded).
    On,
    /// Stop enforcing them.
    Off,
}

pub fn clock(args: &AdminArgs, action: Option<&ClockAction>) -> Result<Value> {
    match action.unwrap_or(&ClockAction::Show) {
        ClockAction::Show => call(args, "GET", "/admin/v1/clock", None),
        ClockAction::Set { time } => {
            call(args, "PUT", "/admin/v1/clock", Some(json!({"now": time})))
        }
        ClockAction::Advance { by } => call(
            args,
            "POST",
            "/admin/v1/clock/advance",
            Some(json!({"seconds": by.as_secs()})),
        ),
    }
}

pub fn faults(args: &AdminArgs, action: Option<&FaultAction>) -> Result<Value> {
    match action.unwrap_or(&FaultAction::List) {
        FaultAction::List => call(args, "GET", "/admin/v1/faults", None),
        FaultAction::Add {
            operation,
            kind,
            probability,
            count,
            latency_ms,
        } => {
            let mut rule = json!({"kind": kind});
            for (k, v) in [
                ("operation", json!(operation)),
                ("probability", json!(probability)),
                ("count", json!(count)),
                ("latency_ms", json!(latency_ms)),
            ] {
                if !v.is_null() {
                    rule[k] = v;
                }
            }
            call(args, "POST", "/admin/v1/faults", Some(rule))
        }
        FaultAction::Remove { id } => call(args, "DELETE", &format!("/admin/v1/faults/{id}"), None),
        FaultAction::Clear => call(args, "DELETE", "/admin/v1/faults", None),
    }
}

pub fn quotas(args: &AdminArgs, action: Option<&QuotaAction>) -> Result<Value> {
    let set = |on: bool| {
        call(
            args,
            "PUT",
            "/admin/v1/quotas",
            Some(json!({"enabled": on})),
        )
    };
    match action.unwrap_or(&QuotaAction::Show) {
        QuotaAction::Show => call(args, "GET", "/admin/v1/quotas", None),
        QuotaAction::On => set(true),
        QuotaAction::Off => set(false),
    }
}

pub fn reset(args: &AdminArgs, yes: bool) -> Result<Value> {
    if !yes {
        bail!("reset deletes every usage record, token and container session on the server; add --yes");
    }
    call(args, "POST", "/admin/v1/reset", Some(json!({})))
}
