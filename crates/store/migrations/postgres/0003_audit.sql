-- marketmeter schema v3 (PostgreSQL): the audit trail, one row per metering API call. Same
-- columns as the SQLite schema.
--
-- Append-only: row triggers refuse UPDATE and DELETE and a statement trigger refuses
-- TRUNCATE, for every role that does not own the table (dropping the triggers or the table is
-- a schema change, outside the service's powers). The test-control reset leaves this table
-- alone.
--
-- seq orders the trail and is the paging cursor. As with any sequence, numbers are drawn
-- when a transaction inserts, not when it commits, so a concurrent call can commit a smaller
-- seq just after a page was read (docs/audit.md: page ranges that lie in the past).
-- Not distributed by seller (see 0001): a call's account may be unknown.
CREATE TABLE audit_events (
    seq                BIGSERIAL PRIMARY KEY,
    time_us            BIGINT NOT NULL,
    operation          TEXT NOT NULL,
    account            TEXT,
    access_key_id      TEXT,
    source_ip          TEXT,
    user_agent         TEXT,
    region             TEXT,
    request_id         TEXT NOT NULL,
    request_parameters TEXT,
    outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'partial', 'error')),
    error_code         TEXT
);
CREATE INDEX audit_events_time ON audit_events (time_us, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
