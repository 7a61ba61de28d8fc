-- marketmeter schema v2 (SQLite): the covering index of usage reports.
--
-- Reports aggregate one product's hour range (see src/reports.rs). Every column they read is
-- in this index, so SQLite answers from the index alone: one range seek on
-- (product_code, hour), then a sequential read with no table lookups. The columns after hour
-- are in the order reports group by (dimension, then customer), so grouping by
-- (hour, dimension[, customer]) aggregates while reading, without a sort.
-- Costs one more B-tree insert per stored record.
CREATE INDEX usage_records_report ON usage_records (
    product_code, hour, dimension,
    customer_aws_account_id, customer_identifier, seller_account, quantity
);
