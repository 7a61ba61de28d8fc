-- marketmeter schema v5 (PostgreSQL): hourly rollups of usage, for reports over large histories.
--
-- usage_hourly holds one row per (product, hour, dimension, seller): the sum of the quantities
-- and the number of usage records. Concurrent writers must not queue on those few hot rows, so
-- the statements that insert or delete usage records only APPEND their per-statement sums to
-- usage_hourly_delta (statement-level triggers over the transition tables, in the same
-- transaction). The store folds the delta into usage_hourly in the background (one process at
-- a time, under an advisory lock, moving rows with DELETE ... RETURNING in one transaction).
-- Reports add both tables in one statement, so they always equal the sum of the stored records,
-- folded or not (see src/postgres/reports.rs). NUMERIC sums cannot overflow on ingest; a report
-- whose sum does not fit a bigint fails as the record scan would.
CREATE TABLE usage_hourly (
    product_code   TEXT NOT NULL,
    hour           BIGINT NOT NULL,
    dimension      TEXT NOT NULL,
    seller_account TEXT NOT NULL,
    quantity       NUMERIC NOT NULL,
    records        BIGINT NOT NULL,
    PRIMARY KEY (product_code, hour, dimension, seller_account)
);

CREATE TABLE usage_hourly_delta (
    product_code   TEXT NOT NULL,
    hour           BIGINT NOT NULL,
    dimension      TEXT NOT NULL,
    seller_account TEXT NOT NULL,
    quantity       NUMERIC NOT NULL,
    records        BIGINT NOT NULL
);
CREATE INDEX usage_hourly_delta_range ON usage_hourly_delta (product_code, hour);

INSERT INTO usage_hourly (product_code, hour, dimension, seller_account, quantity, records)
SELECT product_code, hour, dimension, seller_account, SUM(quantity), COUNT(*)
FROM usage_records GROUP BY product_code, hour, dimension, seller_account;

CREATE FUNCTION usage_hourly_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hourly_delta (product_code, hour, dimension, seller_account, quantity, records)
    SELECT product_code, hour, dimension, seller_account, SUM(quantity), COUNT(*)
    FROM added GROUP BY product_code, hour, dimension, seller_account;
    RETURN NULL;
END $$;

CREATE FUNCTION usage_hourly_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hourly_delta (product_code, hour, dimension, seller_account, quantity, records)
    SELECT product_code, hour, dimension, seller_account, -SUM(quantity), -COUNT(*)
    FROM removed GROUP BY product_code, hour, dimension, seller_account;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_hourly_insert AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_added();
CREATE TRIGGER usage_hourly_delete AFTER DELETE ON usage_records
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_removed();
-- Usage records are never updated; should one ever be, its rollup moves with it.
CREATE TRIGGER usage_hourly_update_old AFTER UPDATE ON usage_records
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_removed();
CREATE TRIGGER usage_hourly_update_new AFTER UPDATE ON usage_records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_added();
