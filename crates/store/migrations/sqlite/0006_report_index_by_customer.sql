-- marketmeter schema v6 (SQLite): the covering report index keyed by customer before dimension.
--
-- Since v5 only reports by customer (or by tag) read this index; the others read usage_hourly.
-- Its order decides how many index pages each group commit dirties, and every dirtied page is
-- written twice (to the WAL, then by the checkpoint). Ordered (hour, dimension, customer), the
-- records a customer sends together (one customer, many dimensions: the usual hourly batch)
-- landed on one page per dimension; ordered (hour, customer, dimension) they land together.
-- Measured with `marketmeter bench` (25 dimensions per request): bytes written per record
-- and writer CPU per record both fell (docs/BENCHMARKS.md). Reports by customer group in this
-- order, so SQLite still aggregates while it reads, with no sort.
DROP INDEX usage_records_report;
CREATE INDEX usage_records_report ON usage_records (
    product_code, hour,
    customer_aws_account_id, customer_identifier, dimension, seller_account, quantity
);
