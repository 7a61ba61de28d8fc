//! Hot pure functions of the ingest path: decode + validate a full BatchMeterUsage request,
//! and quantity parsing. Run with `cargo bench -p marketmeter-wire`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use marketmeter_wire::{decode_request, Operation, Quantity};
use serde_json::json;
use std::hint::black_box;

fn batch_body(records: usize) -> Vec<u8> {
    let records: Vec<_> = (0..records)
        .map(|i| {
            json!({
                "Timestamp": 1_795_402_800 + i,
                "CustomerAWSAccountId": "444455556666",
                "LicenseArn": "arn:aws:license-manager::111122223333:license/l-0a1b2c3d4e5f",
                "Dimension": format!("dimension-{}", i % 3),
                "QuantityAsDecimal": "12.5",
                "UsageAllocations": [
                    {"AllocatedUsageQuantityAsDecimal": "10", "Tags": [{"Key": "team", "Value": "red"}]},
                    {"AllocatedUsageQuantityAsDecimal": "2.5"}
                ]
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "UsageRecords": records })).unwrap()
}

fn decode(c: &mut Criterion) {
    let body = batch_body(25);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(25));
    g.bench_function("batch_meter_usage_25_records", |b| {
        b.iter(|| decode_request(Operation::BatchMeterUsage, black_box(&body)).unwrap())
    });
    let meter = br#"{"ProductCode":"prod-1","Timestamp":1795402800,"UsageDimension":"hosts","UsageQuantity":3,"ClientToken":"7b9a0541-8d0f-46e8-b081-1392f6bde702"}"#;
    g.throughput(Throughput::Elements(1));
    g.bench_function("meter_usage", |b| {
        b.iter(|| decode_request(Operation::MeterUsage, black_box(meter)).unwrap())
    });
    g.finish();
}

fn quantities(c: &mut Criterion) {
    let inputs = [
        "0",
        "17",
        "17.000",
        "9999999999.999999",
        "0.000001",
        "1234.5",
    ];
    c.bench_function("quantity/parse_decimal_x6", |b| {
        b.iter_batched(
            || inputs,
            |xs| xs.map(|s| Quantity::parse_decimal(black_box(s)).unwrap()),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, decode, quantities);
criterion_main!(benches);
