-- marketmeter schema v4 (SQLite): container workloads are metered per run.
--
-- A run lasts from a workload's first RegisterUsage until it is reported stopped
-- (stopped_us); a registration after a stop starts the next run of the same resource, so the
-- key gains the run number. At most one run per workload is running (the partial unique index).
-- Existing sessions become run 1, still running. SQLite cannot change a primary key in place:
-- the table is rebuilt.
CREATE TABLE container_sessions_v4 (
    seller_account      TEXT NOT NULL,
    product_code        TEXT NOT NULL,
    resource_id         TEXT NOT NULL,
    run                 INTEGER NOT NULL,
    customer_account    TEXT NOT NULL,
    platform            TEXT NOT NULL,
    region              TEXT NOT NULL,
    first_registered_us INTEGER NOT NULL,
    stopped_us          INTEGER,
    PRIMARY KEY (seller_account, product_code, resource_id, run)
);
INSERT INTO container_sessions_v4 (seller_account, product_code, resource_id, run,
    customer_account, platform, region, first_registered_us, stopped_us)
SELECT seller_account, product_code, resource_id, 1, customer_account, platform, region,
    first_registered_us, NULL
FROM container_sessions;
DROP TABLE container_sessions;
ALTER TABLE container_sessions_v4 RENAME TO container_sessions;
CREATE INDEX container_sessions_lookup ON container_sessions (product_code, resource_id);
CREATE UNIQUE INDEX container_sessions_running
    ON container_sessions (seller_account, product_code, resource_id) WHERE stopped_us IS NULL;
-- Reports and listings read runs by start time.
CREATE INDEX container_sessions_start ON container_sessions (first_registered_us);
