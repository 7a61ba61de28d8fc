-- marketmeter schema v2 (PostgreSQL): the covering index of usage reports.
--
-- Reports aggregate one product's hour range (GROUP BY bucket, customer, dimension; see
-- src/postgres/reports.rs). The key serves the range seek; INCLUDE carries the other columns
-- they read, so PostgreSQL can answer with an index-only scan once the table is vacuumed.
CREATE INDEX usage_records_report ON usage_records (product_code, hour)
    INCLUDE (seller_account, dimension, customer_aws_account_id, customer_identifier, quantity);
