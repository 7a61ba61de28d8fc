-- marketmeter schema v1 (PostgreSQL). Same tables, columns and keys as the SQLite schema.
--
-- Conventions:
-- * Instants are BIGINT epoch microseconds (columns ending in _us), exactly as on SQLite, so
--   both backends round-trip the same values.
-- * Quantities are BIGINT micro-units (exact; never floating point).
-- * Every table holding a seller's data carries seller_account and every unique key includes
--   it, so the schema can be distributed by seller on Citus without redesign:
--     distributed by seller_account (co-located):
--       products, agreements, registration_tokens, product_keys, container_sessions,
--       usage_records, client_tokens
--     reference tables (small, replicated to every node; identity, not seller data):
--       accounts, access_keys, schema_migrations
-- * Handles looked up without a seller (product code, license ARN, registration token,
--   MeterUsage client token) have plain indexes. Keeping product codes, license ARNs and client
--   tokens unique across sellers is the store's job: it serialises those writes per handle with
--   pg_advisory_xact_lock (a cross-shard unique index would need the distribution column).
-- * Listing order ("insertion order") comes from BIGSERIAL columns, as SQLite's rowid.

CREATE TABLE accounts (
    id   TEXT PRIMARY KEY,
    name TEXT
);

CREATE TABLE access_keys (
    access_key_id        TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    secret_access_key    TEXT NOT NULL,
    session_token        TEXT,
    -- Workload credentials (EC2 instance / ECS task / EKS pod): all three or none.
    workload_resource_id TEXT,
    workload_platform    TEXT,
    workload_region      TEXT,
    CHECK ((workload_resource_id IS NULL) = (workload_platform IS NULL)
       AND (workload_platform IS NULL) = (workload_region IS NULL))
);
CREATE INDEX access_keys_account ON access_keys (account_id);

CREATE TABLE products (
    seller_account  TEXT NOT NULL,
    code            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    fulfillment_url TEXT,
    -- JSON array of {name, unit, price}; price is a decimal string. Kept as text (not jsonb)
    -- so it reads back byte for byte as written.
    dimensions      TEXT NOT NULL,
    seq             BIGSERIAL NOT NULL,
    PRIMARY KEY (seller_account, code)
);
CREATE INDEX products_code ON products (code, seq);

CREATE TABLE agreements (
    seller_account      TEXT NOT NULL,
    agreement_id        TEXT NOT NULL,
    product_code        TEXT NOT NULL,
    customer_account    TEXT NOT NULL,
    customer_identifier TEXT NOT NULL,
    license_arn         TEXT NOT NULL,
    status              TEXT NOT NULL,
    starts_us           BIGINT,
    ends_us             BIGINT,
    seq                 BIGSERIAL NOT NULL,
    PRIMARY KEY (seller_account, agreement_id),
    UNIQUE (seller_account, license_arn)
);
CREATE INDEX agreements_license ON agreements (license_arn);
CREATE INDEX agreements_product_customer ON agreements (product_code, customer_account);
CREATE INDEX agreements_product_identifier ON agreements (product_code, customer_identifier);
CREATE INDEX agreements_identifier ON agreements (customer_identifier);
CREATE INDEX agreements_customer ON agreements (customer_account);

CREATE TABLE registration_tokens (
    seller_account   TEXT NOT NULL,
    token            TEXT NOT NULL,
    product_code     TEXT NOT NULL,
    customer_account TEXT NOT NULL,
    agreement_id     TEXT NOT NULL,
    created_us       BIGINT NOT NULL,
    expires_us       BIGINT NOT NULL,
    single_use       BOOLEAN NOT NULL,
    used_us          BIGINT,
    PRIMARY KEY (seller_account, token)
);
CREATE INDEX registration_tokens_token ON registration_tokens (token);

CREATE TABLE product_keys (
    seller_account TEXT NOT NULL,
    product_code   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    private_pem    TEXT NOT NULL,
    public_pem     TEXT NOT NULL,
    created_us     BIGINT NOT NULL,
    retired_us     BIGINT,
    PRIMARY KEY (seller_account, product_code, version)
);
CREATE INDEX product_keys_product ON product_keys (product_code, version);

CREATE TABLE container_sessions (
    seller_account      TEXT NOT NULL,
    product_code        TEXT NOT NULL,
    resource_id         TEXT NOT NULL,
    customer_account    TEXT NOT NULL,
    platform            TEXT NOT NULL,
    region              TEXT NOT NULL,
    first_registered_us BIGINT NOT NULL,
    PRIMARY KEY (seller_account, product_code, resource_id)
);
CREATE INDEX container_sessions_lookup ON container_sessions (product_code, resource_id);

-- The dedup claim and the usage record are this one row: the unique key below is the claim,
-- so a failed write can never leave a key claimed without its record.
CREATE TABLE usage_records (
    -- Batch order for listings; never exposed.
    id                      BIGSERIAL NOT NULL,
    metering_record_id      TEXT NOT NULL,
    seller_account          TEXT NOT NULL,
    identity_kind           TEXT NOT NULL,
    identity_a              TEXT NOT NULL,
    identity_b              TEXT NOT NULL,
    dimension               TEXT NOT NULL,
    hour                    BIGINT NOT NULL,
    product_code            TEXT NOT NULL,
    customer_identifier     TEXT,
    customer_aws_account_id TEXT,
    license_arn             TEXT,
    resource_id             TEXT,
    ts_secs                 BIGINT NOT NULL,
    ts_nanos                BIGINT NOT NULL,
    quantity                BIGINT NOT NULL,
    -- JSON array of {quantity: decimal string, tags: [{key, value}]}.
    allocations             TEXT NOT NULL,
    operation               TEXT NOT NULL,
    received_us             BIGINT NOT NULL,
    PRIMARY KEY (seller_account, id),
    CONSTRAINT usage_records_dedup_key
        UNIQUE (seller_account, identity_kind, identity_a, identity_b, dimension, hour),
    CONSTRAINT usage_records_record_id UNIQUE (seller_account, metering_record_id)
);
CREATE INDEX usage_records_listing ON usage_records (seller_account, product_code, hour, id);
CREATE INDEX usage_records_product ON usage_records (product_code, hour, id);
CREATE INDEX usage_records_hour ON usage_records (hour, id);

-- MeterUsage ClientToken claims, scoped to the calling account (as AWS scopes them). The key
-- includes the seller (for distribution); a token is still one per caller across sellers: the
-- store claims it under an advisory lock on (caller, token).
CREATE TABLE client_tokens (
    seller_account     TEXT NOT NULL,
    caller_account     TEXT NOT NULL,
    client_token       TEXT NOT NULL,
    fingerprint        TEXT NOT NULL,
    metering_record_id TEXT NOT NULL,
    created_us         BIGINT NOT NULL,
    PRIMARY KEY (seller_account, caller_account, client_token)
);
CREATE INDEX client_tokens_lookup ON client_tokens (caller_account, client_token);
