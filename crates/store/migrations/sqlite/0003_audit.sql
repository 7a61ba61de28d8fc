-- marketmeter schema v3 (SQLite): the audit trail, one row per metering API call.
--
-- Append-only: the triggers below refuse UPDATE and DELETE, so neither the service nor
-- anyone with SQL access can rewrite history through the database (dropping the table or the
-- triggers is a schema change, outside the service's powers). The test-control reset leaves
-- this table alone.
--
-- seq is the rowid: with deletes refused the largest rowid is never removed, so sequence
-- numbers are never reused without paying for AUTOINCREMENT's bookkeeping on every insert.
-- Instants are epoch microseconds, like every _us column.
CREATE TABLE audit_events (
    seq                INTEGER PRIMARY KEY,
    time_us            INTEGER NOT NULL,
    operation          TEXT NOT NULL,
    account            TEXT,
    access_key_id      TEXT,
    source_ip          TEXT,
    user_agent         TEXT,
    region             TEXT,
    request_id         TEXT NOT NULL,
    -- The request body as JSON, secrets replaced (see docs/audit.md).
    request_parameters TEXT,
    outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'partial', 'error')),
    error_code         TEXT
);
-- Time-range queries and exports; the other filters narrow within a range or a seq page.
CREATE INDEX audit_events_time ON audit_events (time_us, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
