-- marketmeter schema v4 (PostgreSQL): container workloads are metered per run.
--
-- A run lasts from a workload's first RegisterUsage until it is reported stopped
-- (stopped_us); a registration after a stop starts the next run of the same resource, so the
-- key gains the run number. At most one run per workload is running (the partial unique index,
-- which includes the distribution column). Existing sessions become run 1, still running.
ALTER TABLE container_sessions ADD COLUMN run BIGINT NOT NULL DEFAULT 1;
ALTER TABLE container_sessions ALTER COLUMN run DROP DEFAULT;
ALTER TABLE container_sessions ADD COLUMN stopped_us BIGINT;
ALTER TABLE container_sessions DROP CONSTRAINT container_sessions_pkey;
ALTER TABLE container_sessions
    ADD PRIMARY KEY (seller_account, product_code, resource_id, run);
CREATE UNIQUE INDEX container_sessions_running
    ON container_sessions (seller_account, product_code, resource_id) WHERE stopped_us IS NULL;
-- Reports and listings read runs by start time.
CREATE INDEX container_sessions_start ON container_sessions (first_registered_us);
