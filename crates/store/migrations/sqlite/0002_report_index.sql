-- marketmeter schema v2 (SQLite): the covering index of usage reports.
--
-- Reports aggregate one product's hour range (GROUP BY bucket, customer, dimension; see
-- src/reports.rs). Every column they read is in this index, so SQLite answers from the index
-- alone: one range seek on (product_code, hour), then a sequential read, no table lookups.
-- Costs one more B-tree insert per stored record.
CREATE INDEX usage_records_report ON usage_records (
    product_code, hour, seller_account, dimension,
    customer_aws_account_id, customer_identifier, quantity
);
