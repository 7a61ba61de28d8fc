//! Fault injection for testing clients: per operation, answer `ThrottlingException` or
//! `InternalServiceErrorException`, move a BatchMeterUsage's records to `UnprocessedRecords`,
//! or add latency; on every call with a probability, or for the next N calls.
//!
//! Rules live in this process only (not in the store). With no rule set, [`Faults::draw`] is a
//! single relaxed atomic load.

use marketmeter_wire::{
    ApiError, BatchMeterUsageRequest, BatchMeterUsageResult, ErrorCode, Operation,
};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `ThrottlingException` (400).
    Throttling,
    /// Answer `InternalServiceErrorException` (500).
    InternalError,
    /// BatchMeterUsage only: store nothing and return every record in `UnprocessedRecords`.
    Unprocessed,
    /// Wait `latency_ms` before handling the call normally.
    Latency,
}

/// A rule as the admin API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// The operation it applies to; absent: every operation.
    pub operation: Option<String>,
    /// A [`FaultKind`] name; parsed in `validate` so a bad one is reported with its field.
    pub kind: String,
    /// Chance (0..=1) that a call is hit; absent: every call.
    pub probability: Option<f64>,
    /// Hit only this many calls, then the rule is removed; absent: no limit.
    pub count: Option<u64>,
    /// Added latency, with `kind: latency`.
    pub latency_ms: Option<u64>,
}

/// A rule as stored and listed.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: u64,
    /// `None`: every operation.
    #[serde(serialize_with = "op_name")]
    pub operation: Option<Operation>,
    pub kind: FaultKind,
    pub probability: Option<f64>,
    /// Calls still to hit (for rules created with `count`).
    pub remaining: Option<u64>,
    pub latency_ms: Option<u64>,
    /// Calls hit so far.
    pub hits: u64,
}

fn op_name<S: serde::Serializer>(op: &Option<Operation>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.map_or("*", Operation::name))
}

/// A rule the admin API refuses: which field, and why.
#[derive(Debug)]
pub struct InvalidRule {
    pub field: &'static str,
    pub message: String,
}

fn invalid<T>(field: &'static str, message: String) -> Result<T, InvalidRule> {
    Err(InvalidRule { field, message })
}

impl NewRule {
    fn validate(self, id: u64) -> Result<Rule, InvalidRule> {
        let kind =
            serde_json::from_value::<FaultKind>(serde_json::Value::String(self.kind.clone()))
                .or_else(|_| {
                    invalid(
                        "kind",
                        format!(
                            "kind {:?} is not throttling, internal_error, unprocessed or latency",
                            self.kind
                        ),
                    )
                })?;
        let operation = match self.operation.as_deref() {
            None | Some("*") => None,
            Some(name) => match Operation::ALL.into_iter().find(|o| o.name() == name) {
                Some(op) => Some(op),
                None => {
                    return invalid(
                        "operation",
                        format!("operation {name:?} is not BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer"),
                    )
                }
            },
        };
        if self.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return invalid("probability", "probability must be between 0 and 1".into());
        }
        if self.count == Some(0) {
            return invalid("count", "count must be at least 1".into());
        }
        match (kind, self.latency_ms) {
            (FaultKind::Latency, None) => {
                return invalid("latency_ms", "kind latency needs latency_ms".into())
            }
            (FaultKind::Latency, Some(ms)) if ms > MAX_LATENCY_MS => {
                return invalid(
                    "latency_ms",
                    format!("latency_ms is at most {MAX_LATENCY_MS}"),
                )
            }
            (FaultKind::Latency, Some(_)) => {}
            (_, Some(_)) => {
                return invalid(
                    "latency_ms",
                    "latency_ms goes with kind latency only".into(),
                )
            }
            (_, None) => {}
        }
        if kind == FaultKind::Unprocessed && operation != Some(Operation::BatchMeterUsage) {
            return invalid(
                "operation",
                "kind unprocessed applies to operation BatchMeterUsage only".into(),
            );
        }
        Ok(Rule {
            id,
            operation,
            kind,
            probability: self.probability,
            remaining: self.count,
            latency_ms: self.latency_ms,
            hits: 0,
        })
    }
}

/// Longest latency a rule may add (a minute: longer looks like a hung server, not a slow one).
pub const MAX_LATENCY_MS: u64 = 60_000;

/// What the rules decided for one call.
#[derive(Debug, Default, PartialEq)]
pub struct Draw {
    pub delay: Option<Duration>,
    pub error: Option<ErrorCode>,
    pub unprocessed: bool,
}

impl Draw {
    /// The injected error answer, if any.
    pub fn error(&self) -> Option<ApiError> {
        self.error.map(|code| {
            let msg = match code {
                ErrorCode::Throttling => "rate exceeded (injected fault); retry with backoff",
                _ => "internal error (injected fault); retry the request",
            };
            ApiError::new(code, msg)
        })
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    /// Any rule set: the fast path reads only this.
    armed: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    next_id: AtomicU64,
}

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, rule: NewRule) -> Result<Rule, InvalidRule> {
        let rule = rule.validate(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)?;
        let mut rules = self.rules();
        rules.push(rule.clone());
        self.armed.store(true, Ordering::Release);
        Ok(rule)
    }

    pub fn list(&self) -> Vec<Rule> {
        self.rules().clone()
    }

    /// Removes one rule; false when there is no rule `id`.
    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules();
        let before = rules.len();
        rules.retain(|r| r.id != id);
        self.armed.store(!rules.is_empty(), Ordering::Release);
        rules.len() < before
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut rules = self.rules();
        let n = rules.len();
        rules.clear();
        self.armed.store(false, Ordering::Release);
        n
    }

    /// Applies the rules to one call of `op`. Rules are tried in order; each that hits adds its
    /// effect (latencies add up; the first error wins). Counted rules are removed when spent.
    pub fn draw(&self, op: Operation) -> Draw {
        if !self.armed.load(Ordering::Acquire) {
            return Draw::default();
        }
        let mut draw = Draw::default();
        let mut rules = self.rules();
        for r in rules.iter_mut() {
            if r.operation.is_some_and(|o| o != op) {
                continue;
            }
            if r.probability.is_some_and(|p| rand::random::<f64>() >= p) {
                continue;
            }
            r.hits += 1;
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            match r.kind {
                FaultKind::Throttling => {
                    draw.error.get_or_insert(ErrorCode::Throttling);
                }
                FaultKind::InternalError => {
                    draw.error.get_or_insert(ErrorCode::InternalServiceError);
                }
                FaultKind::Unprocessed => draw.unprocessed = true,
                FaultKind::Latency => {
                    let add = Duration::from_millis(r.latency_ms.unwrap_or(0));
                    draw.delay = Some(draw.delay.unwrap_or_default() + add);
                }
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        self.armed.store(!rules.is_empty(), Ordering::Release);
        draw
    }
}

/// The answer of a BatchMeterUsage hit by an `unprocessed` fault: nothing stored, every record
/// to be resubmitted (what AWS answers when it cannot take records this time).
pub fn unprocessed(req: BatchMeterUsageRequest) -> BatchMeterUsageResult {
    BatchMeterUsageResult {
        results: Vec::new(),
        unprocessed_records: req.usage_records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(op: Option<&str>, kind: FaultKind) -> NewRule {
        NewRule {
            operation: op.map(str::to_string),
            kind: serde_json::to_value(kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
            probability: None,
            count: None,
            latency_ms: None,
        }
    }

    #[test]
    fn no_rules_draw_nothing() {
        assert_eq!(
            Faults::default().draw(Operation::MeterUsage),
            Draw::default()
        );
    }

    #[test]
    fn counted_rules_hit_the_next_n_calls_of_their_operation_then_go() {
        let f = Faults::default();
        f.add(NewRule {
            count: Some(2),
            ..rule(Some("MeterUsage"), FaultKind::Throttling)
        })
        .unwrap();
        assert_eq!(f.draw(Operation::BatchMeterUsage).error, None);
        assert_eq!(
            f.draw(Operation::MeterUsage).error,
            Some(ErrorCode::Throttling)
        );
        assert_eq!(
            f.draw(Operation::MeterUsage).error,
            Some(ErrorCode::Throttling)
        );
        assert_eq!(f.draw(Operation::MeterUsage).error, None);
        assert!(f.list().is_empty());
    }

    #[test]
    fn probabilities_zero_and_one_never_and_always_hit() {
        let f = Faults::default();
        let never = f
            .add(NewRule {
                probability: Some(0.0),
                ..rule(None, FaultKind::InternalError)
            })
            .unwrap();
        for _ in 0..100 {
            assert_eq!(f.draw(Operation::ResolveCustomer).error, None);
        }
        f.remove(never.id);
        f.add(NewRule {
            probability: Some(1.0),
            ..rule(None, FaultKind::InternalError)
        })
        .unwrap();
        for _ in 0..100 {
            assert_eq!(
                f.draw(Operation::ResolveCustomer).error,
                Some(ErrorCode::InternalServiceError)
            );
        }
        assert_eq!(f.list()[0].hits, 100);
    }

    #[test]
    fn half_probability_hits_about_half() {
        let f = Faults::default();
        f.add(NewRule {
            probability: Some(0.5),
            ..rule(None, FaultKind::Throttling)
        })
        .unwrap();
        let hits = (0..2000)
            .filter(|_| f.draw(Operation::MeterUsage).error.is_some())
            .count();
        // Binomial(2000, 0.5): 6 standard deviations either side.
        assert!((866..=1134).contains(&hits), "{hits}");
    }

    #[test]
    fn effects_combine() {
        let f = Faults::default();
        for ms in [100, 250] {
            f.add(NewRule {
                latency_ms: Some(ms),
                ..rule(None, FaultKind::Latency)
            })
            .unwrap();
        }
        f.add(rule(Some("BatchMeterUsage"), FaultKind::Unprocessed))
            .unwrap();
        let d = f.draw(Operation::BatchMeterUsage);
        assert_eq!(d.delay, Some(Duration::from_millis(350)));
        assert!(d.unprocessed);
        assert_eq!(d.error, None);
        assert!(!f.draw(Operation::MeterUsage).unprocessed);
        assert_eq!(f.clear(), 3);
        assert_eq!(f.draw(Operation::BatchMeterUsage), Draw::default());
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let f = Faults::default();
        let field = |r: NewRule| f.add(r).unwrap_err().field;
        assert_eq!(
            field(rule(Some("Nope"), FaultKind::Throttling)),
            "operation"
        );
        assert_eq!(
            field(rule(Some("MeterUsage"), FaultKind::Unprocessed)),
            "operation"
        );
        assert_eq!(field(rule(None, FaultKind::Latency)), "latency_ms");
        assert_eq!(
            field(NewRule {
                kind: "explode".into(),
                ..rule(None, FaultKind::Throttling)
            }),
            "kind"
        );
        assert_eq!(
            field(NewRule {
                latency_ms: Some(5),
                ..rule(None, FaultKind::Throttling)
            }),
            "latency_ms"
        );
        assert_eq!(
            field(NewRule {
                probability: Some(1.5),
                ..rule(None, FaultKind::Throttling)
            }),
            "probability"
        );
        assert_eq!(
            field(NewRule {
                count: Some(0),
                ..rule(None, FaultKind::Throttling)
            }),
            "count"
        );
        assert!(f.list().is_empty());
    }
}
