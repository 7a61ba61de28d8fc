-- marketmeter schema v6 (PostgreSQL): one index for product listings and reports instead of two.
--
-- usage_records_product (product_code, hour, id) served listings by product; the covering
-- report index (product_code, hour) INCLUDE (...) served reports. With id in the report index's
-- key, that one B-tree serves both (a listing is a range seek in (hour, id) order; a report a
-- range seek with an index-only scan), and every stored record updates one B-tree less. That
-- made no measurable difference to ingest throughput on the benchmark machine
-- (docs/BENCHMARKS.md); it is kept for the smaller, simpler schema.
DROP INDEX usage_records_product;
DROP INDEX usage_records_report;
CREATE INDEX usage_records_report ON usage_records (product_code, hour, id)
    INCLUDE (seller_account, dimension, customer_aws_account_id, customer_identifier, quantity);
