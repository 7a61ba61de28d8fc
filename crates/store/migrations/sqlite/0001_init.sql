-- marketmeter schema v1 (SQLite).
--
-- Conventions:
-- * Instants are INTEGER epoch microseconds (columns ending in _us). Integers sort and compare
--   correctly and cover every year the domain can express.
-- * Quantities are INTEGER micro-units (exact; never REAL).
-- * Every table holding a seller's data carries seller_account and every unique key includes it,
--   so the schema can later be distributed by seller (Citus) without redesign. Lookups by a
--   globally unique handle (product code, license ARN, token) use plain indexes; the single
--   writer keeps those handles unique across sellers.
-- * accounts and access_keys are identity tables (reference data), keyed globally.

CREATE TABLE accounts (
    id   TEXT PRIMARY KEY NOT NULL,
    name TEXT
);

CREATE TABLE access_keys (
    access_key_id        TEXT PRIMARY KEY NOT NULL,
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
    -- JSON array of {name, unit, price}; price is a decimal string.
    dimensions      TEXT NOT NULL,
    PRIMARY KEY (seller_account, code)
);
CREATE INDEX products_code ON products (code);

CREATE TABLE agreements (
    seller_account      TEXT NOT NULL,
    agreement_id        TEXT NOT NULL,
    product_code        TEXT NOT NULL,
    customer_account    TEXT NOT NULL,
    customer_identifier TEXT NOT NULL,
    license_arn         TEXT NOT NULL,
    status              TEXT NOT NULL,
    starts_us           INTEGER,
    ends_us             INTEGER,
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
    created_us       INTEGER NOT NULL,
    expires_us       INTEGER NOT NULL,
    single_use       INTEGER NOT NULL,
    used_us          INTEGER,
    PRIMARY KEY (seller_account, token)
);
CREATE INDEX registration_tokens_token ON registration_tokens (token);

CREATE TABLE product_keys (
    seller_account TEXT NOT NULL,
    product_code   TEXT NOT NULL,
    version        INTEGER NOT NULL,
    private_pem    TEXT NOT NULL,
    public_pem     TEXT NOT NULL,
    created_us     INTEGER NOT NULL,
    retired_us     INTEGER,
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
    first_registered_us INTEGER NOT NULL,
    PRIMARY KEY (seller_account, product_code, resource_id)
);
CREATE INDEX container_sessions_lookup ON container_sessions (product_code, resource_id);

-- The dedup claim and the usage record are this one row: the unique key below is the claim,
-- so a failed write can never leave a key claimed without its record.
CREATE TABLE usage_records (
    -- Insertion order for listings; never exposed.
    id                      INTEGER PRIMARY KEY,
    metering_record_id      TEXT NOT NULL,
    seller_account          TEXT NOT NULL,
    identity_kind           TEXT NOT NULL,
    identity_a              TEXT NOT NULL,
    identity_b              TEXT NOT NULL,
    dimension               TEXT NOT NULL,
    hour                    INTEGER NOT NULL,
    product_code            TEXT NOT NULL,
    customer_identifier     TEXT,
    customer_aws_account_id TEXT,
    license_arn             TEXT,
    resource_id             TEXT,
    ts_secs                 INTEGER NOT NULL,
    ts_nanos                INTEGER NOT NULL,
    quantity                INTEGER NOT NULL,
    -- JSON array of {quantity: decimal string, tags: [{key, value}]}.
    allocations             TEXT NOT NULL,
    operation               TEXT NOT NULL,
    received_us             INTEGER NOT NULL,
    UNIQUE (seller_account, identity_kind, identity_a, identity_b, dimension, hour),
    UNIQUE (seller_account, metering_record_id)
);
CREATE INDEX usage_records_listing ON usage_records (seller_account, product_code, hour);
CREATE INDEX usage_records_product ON usage_records (product_code, hour);

-- MeterUsage ClientToken claims, scoped to the calling account (as AWS scopes them).
CREATE TABLE client_tokens (
    caller_account     TEXT NOT NULL,
    client_token       TEXT NOT NULL,
    seller_account     TEXT NOT NULL,
    fingerprint        TEXT NOT NULL,
    metering_record_id TEXT NOT NULL,
    created_us         INTEGER NOT NULL,
    UNIQUE (caller_account, client_token)
);
