//! Every response is checked: HTTP 200, a body of the operation's result shape, every record
//! accepted with a MeteringRecordId, nothing in UnprocessedRecords. Anything else is an error,
//! named so that the report can count errors by kind.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    BatchMeterUsage,
    MeterUsage,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::BatchMeterUsage => "BatchMeterUsage",
            Op::MeterUsage => "MeterUsage",
        }
    }

    pub fn target(self) -> &'static str {
        match self {
            Op::BatchMeterUsage => "AWSMPMeteringService.BatchMeterUsage",
            Op::MeterUsage => "AWSMPMeteringService.MeterUsage",
        }
    }
}

/// What one response counted for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Records the server took (all of the request's records when the request is ok).
    pub records_ok: u64,
    /// One entry per problem; empty when the request is ok.
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(rename = "Results", default)]
    results: Vec<RecordResult>,
    #[serde(rename = "UnprocessedRecords", default)]
    unprocessed: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct RecordResult {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "MeteringRecordId")]
    metering_record_id: Option<String>,
}

#[derive(Deserialize)]
struct MeterResult {
    #[serde(rename = "MeteringRecordId")]
    metering_record_id: String,
}

/// Checks a response to a request of `sent` records. `accepted` lists record statuses besides
/// `Success` that count as taken (for peers that cannot subscribe customers, e.g. moto).
pub fn check(
    op: Op,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
    sent: u64,
    accepted: &[String],
) -> Verdict {
    let mut v = Verdict::default();
    if status != 200 {
        v.errors.push(format!(
            "HTTP {status} {}",
            error_type.unwrap_or("(no x-amzn-ErrorType)")
        ));
        return v;
    }
    match op {
        Op::BatchMeterUsage => match serde_json::from_slice::<BatchResult>(body) {
            Ok(r) => {
                if !r.unprocessed.is_empty() {
                    v.errors
                        .push(format!("{} UnprocessedRecords", r.unprocessed.len()));
                }
                if r.results.len() as u64 + r.unprocessed.len() as u64 != sent {
                    v.errors.push(format!(
                        "{} results for {sent} records",
                        r.results.len() + r.unprocessed.len()
                    ));
                }
                for rec in &r.results {
                    let taken = rec.status == "Success" || accepted.contains(&rec.status);
                    if !taken {
                        v.errors.push(format!("record status {}", rec.status));
                    } else if rec.status == "Success" && rec.metering_record_id.is_none() {
                        v.errors.push("Success without MeteringRecordId".into());
                    } else {
                        v.records_ok += 1;
                    }
                }
            }
            Err(e) => v
                .errors
                .push(format!("malformed BatchMeterUsage result: {e}")),
        },
        Op::MeterUsage => match serde_json::from_slice::<MeterResult>(body) {
            Ok(r) if !r.metering_record_id.is_empty() => v.records_ok = 1,
            Ok(_) => v.errors.push("empty MeteringRecordId".into()),
            Err(e) => v.errors.push(format!("malformed MeterUsage result: {e}")),
        },
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(body: &str, sent: u64) -> Verdict {
        check(Op::BatchMeterUsage, 200, None, body.as_bytes(), sent, &[])
    }

    #[test]
    fn all_records_successful_is_ok() {
        let body = r#"{"Results":[{"UsageRecord":{},"MeteringRecordId":"a","Status":"Success"},
            {"UsageRecord":{},"MeteringRecordId":"b","Status":"Success"}],"UnprocessedRecords":[]}"#;
        assert_eq!(
            batch(body, 2),
            Verdict {
                records_ok: 2,
                errors: vec![]
            }
        );
    }

    #[test]
    fn any_other_outcome_is_an_error() {
        let dup = r#"{"Results":[{"MeteringRecordId":"a","Status":"Success"},{"Status":"DuplicateRecord"}],"UnprocessedRecords":[]}"#;
        assert_eq!(batch(dup, 2).errors, vec!["record status DuplicateRecord"]);
        assert_eq!(batch(dup, 2).records_ok, 1);
        let unprocessed = r#"{"Results":[],"UnprocessedRecords":[{},{}]}"#;
        assert_eq!(batch(unprocessed, 2).errors, vec!["2 UnprocessedRecords"]);
        let short = r#"{"Results":[{"MeteringRecordId":"a","Status":"Success"}]}"#;
        assert_eq!(batch(short, 2).errors, vec!["1 results for 2 records"]);
        let no_id = r#"{"Results":[{"Status":"Success"}]}"#;
        assert_eq!(
            batch(no_id, 1).errors,
            vec!["Success without MeteringRecordId"]
        );
        assert!(batch("<html>", 1).errors[0].starts_with("malformed"));
        let throttled = check(
            Op::MeterUsage,
            400,
            Some("ThrottlingException"),
            b"{}",
            1,
            &[],
        );
        assert_eq!(throttled.errors, vec!["HTTP 400 ThrottlingException"]);
        assert_eq!(
            check(
                Op::MeterUsage,
                200,
                None,
                br#"{"MeteringRecordId":""}"#,
                1,
                &[]
            )
            .errors,
            vec!["empty MeteringRecordId"]
        );
    }

    #[test]
    fn accepted_statuses_count_as_taken() {
        let body = r#"{"Results":[{"Status":"CustomerNotSubscribed"}],"UnprocessedRecords":[]}"#;
        let accepted = ["CustomerNotSubscribed".to_string()];
        let v = check(
            Op::BatchMeterUsage,
            200,
            None,
            body.as_bytes(),
            1,
            &accepted,
        );
        assert_eq!((v.records_ok, v.errors.len()), (1, 0));
        assert_eq!(
            check(
                Op::MeterUsage,
                200,
                None,
                br#"{"MeteringRecordId":"x"}"#,
                1,
                &[]
            ),
            Verdict {
                records_ok: 1,
                errors: vec![]
            }
        );
    }
}
