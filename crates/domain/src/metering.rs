//! The four operations' rules: authorization, windows, dimensions, licenses, entitlement,
//! dedup and idempotency. Input arrives decoded and constraint-checked by `wire`.

use crate::audit::Audit;
use crate::caller::Caller;
use crate::clock::Clock;
use crate::dedup::{hour_bucket, is_retry};
use crate::jws::{self, RegisterUsageClaims};
use crate::model::*;
use crate::store::{MeterOutcome, Store, StoreError, TokenClaim, UsageOutcome};
use crate::windows::Windows;
use marketmeter_wire::validate::{
    allocation_quantity, meter_usage_quantity, record_quantity, tag_set,
};
use marketmeter_wire::{
    ApiError, BatchMeterUsageRequest, BatchMeterUsageResult, EpochTime, ErrorCode, Metadata,
    MeterUsageRequest, MeterUsageResult, RegisterUsageRequest, RegisterUsageResult,
    ResolveCustomerRequest, ResolveCustomerResult, UsageAllocation, UsageRecord, UsageRecordResult,
    UsageRecordResultStatus,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Behaviour knobs of the rules.
#[derive(Debug, Clone)]
pub struct MeteringConfig {
    pub windows: Windows,
    /// How long a registration token resolves. AWS documents about 4 hours.
    pub registration_token_ttl: Duration,
    /// Registration tokens resolve once only (AWS: reusable until expiry).
    pub single_use_tokens: bool,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            windows: Windows::default(),
            registration_token_ttl: Duration::hours(4),
            single_use_tokens: false,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::internal("the metering store is temporarily unavailable; retry the request")
    }
}

fn err(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

/// Non-empty optional string (the Rust SDK sends `CustomerIdentifier: ""` for "absent").
fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

pub struct Metering {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: MeteringConfig,
}

/// How one record of a batch is to be answered once the batch is checked.
enum Planned {
    NotSubscribed,
    Write(usize),
}

impl Metering {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: MeteringConfig) -> Self {
        Self {
            store,
            clock,
            config,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn config(&self) -> &MeteringConfig {
        &self.config
    }

    // ------------------------------------------------------------------ BatchMeterUsage

    pub async fn batch_meter_usage(
        &self,
        caller: &Caller,
        req: BatchMeterUsageRequest,
        audit: &mut Audit,
    ) -> Result<BatchMeterUsageResult, ApiError> {
        let now = self.clock.now();
        let product = self.batch_product(caller, &req).await?;

        // Request-level checks first: one bad record fails the whole batch and stores nothing.
        // Looked up once per distinct license / customer identifier, not per record.
        let mut licenses: HashMap<&str, Agreement> = HashMap::new();
        let mut legacy: HashMap<&str, Vec<Agreement>> = HashMap::new();
        let mut times = Vec::with_capacity(req.usage_records.len());
        for (i, r) in req.usage_records.iter().enumerate() {
            let at = self
                .config
                .windows
                .check_batch(r.timestamp, now)
                .map_err(|e| err(e.code, format!("UsageRecords.{}: {}", i + 1, e.message)))?;
            if !product.has_dimension(&r.dimension) {
                return Err(unknown_dimension(&product, &r.dimension));
            }
            if let Some(arn) = r.license_arn.as_deref() {
                let agreement = match licenses.get(arn) {
                    Some(a) => a.clone(),
                    None => self.store.agreement_by_license(arn).await?.ok_or_else(|| {
                        err(
                            ErrorCode::InvalidLicense,
                            format!("LicenseArn {arn} is not a known license"),
                        )
                    })?,
                };
                check_license(&agreement, r, &product, at)?;
                licenses.insert(arn, agreement);
            } else if let Some(ci) = present(&r.customer_identifier) {
                if !legacy.contains_key(ci) {
                    let agreements = self
                        .store
                        .agreements_for_identifier(&product.code, ci)
                        .await?;
                    if agreements.is_empty() && !self.store.customer_identifier_exists(ci).await? {
                        return Err(err(
                            ErrorCode::InvalidCustomerIdentifier,
                            format!("CustomerIdentifier {ci:?} does not exist; use the value ResolveCustomer returned"),
                        ));
                    }
                    legacy.insert(ci, agreements);
                }
            }
            times.push(at);
        }

        // Entitlement per record, then one write for everything subscribed.
        let mut plan = Vec::with_capacity(req.usage_records.len());
        let mut rows = Vec::new();
        for (r, at) in req.usage_records.iter().zip(&times) {
            let (identity, subscribed) = match r.license_arn.as_deref() {
                Some(arn) => {
                    let a = &licenses[arn];
                    let identity = Identity::License {
                        customer_account: a.customer_account.clone(),
                        license_arn: arn.to_string(),
                    };
                    (identity, a.is_active_at(*at))
                }
                None => {
                    let ci = present(&r.customer_identifier).unwrap_or_default();
                    let agreements = legacy.get(ci).map(Vec::as_slice).unwrap_or_default();
                    let identity = Identity::Legacy {
                        product_code: product.code.clone(),
                        customer_identifier: ci.to_string(),
                    };
                    (identity, agreements.iter().any(|a| a.is_active_at(*at)))
                }
            };
            if !subscribed {
                plan.push(Planned::NotSubscribed);
                continue;
            }
            let (quantity, _) = record_quantity(r);
            plan.push(Planned::Write(rows.len()));
            rows.push(UsageRecordRow {
                metering_record_id: new_record_id(),
                key: MeteringKey {
                    seller_account: product.seller_account.clone(),
                    identity,
                    dimension: r.dimension.clone(),
                    hour: hour_bucket(r.timestamp.secs),
                },
                product_code: product.code.clone(),
                customer_identifier: present(&r.customer_identifier).map(str::to_string),
                customer_aws_account_id: r.customer_aws_account_id.clone(),
                license_arn: r.license_arn.clone(),
                resource_id: None,
                timestamp: r.timestamp,
                quantity,
                allocations: stored_allocations(r.usage_allocations.as_deref()),
                operation: MeteringOperation::BatchMeterUsage,
                received_at: now,
            });
        }

        // A store failure leaves the records unprocessed: the caller resubmits them (and the
        // call is audited as partial, on its own, by the caller of this function).
        let outcomes = if rows.is_empty() {
            Some(Vec::new())
        } else {
            match self.store.commit_usage(rows, audit.for_write()).await {
                Ok(o) => {
                    audit.written();
                    Some(o)
                }
                Err(e) => {
                    tracing::error!(error = %e, "batch commit failed; answering UnprocessedRecords");
                    None
                }
            }
        };

        let mut result = BatchMeterUsageResult::default();
        for (r, p) in req.usage_records.into_iter().zip(plan) {
            let (status, id) = match (p, &outcomes) {
                (Planned::NotSubscribed, _) => {
                    (UsageRecordResultStatus::CustomerNotSubscribed, None)
                }
                (Planned::Write(_), None) => {
                    result.unprocessed_records.push(r);
                    continue;
                }
                (Planned::Write(i), Some(o)) => match &o[i] {
                    UsageOutcome::Stored { metering_record_id }
                    | UsageOutcome::Retry { metering_record_id } => (
                        UsageRecordResultStatus::Success,
                        Some(metering_record_id.clone()),
                    ),
                    UsageOutcome::Duplicate { .. } => {
                        (UsageRecordResultStatus::DuplicateRecord, None)
                    }
                },
            };
            result.results.push(UsageRecordResult {
                usage_record: r,
                metering_record_id: id,
                status,
            });
        }
        Ok(result)
    }

    /// The one product a batch is for: the request's ProductCode, else the records' licenses'.
    async fn batch_product(
        &self,
        caller: &Caller,
        req: &BatchMeterUsageRequest,
    ) -> Result<Arc<Product>, ApiError> {
        let code = match present(&req.product_code) {
            Some(code) => code.to_string(),
            None => {
                let Some(arn) = req
                    .usage_records
                    .iter()
                    .find_map(|r| r.license_arn.as_deref())
                else {
                    return Err(ApiError::validation(
                        "ProductCode is required unless the records carry CustomerAWSAccountId and LicenseArn",
                    ));
                };
                let a = self.store.agreement_by_license(arn).await?.ok_or_else(|| {
                    err(
                        ErrorCode::InvalidLicense,
                        format!("LicenseArn {arn} is not a known license"),
                    )
                })?;
                a.product_code
            }
        };
        let product = self.owned_product(caller, &code).await?;
        if product.kind != ProductKind::Saas {
            return Err(err(
                ErrorCode::InvalidProductCode,
                format!(
                    "product {code} is a {} product; BatchMeterUsage meters SaaS products (use MeterUsage)",
                    product.kind.as_str()
                ),
            ));
        }
        Ok(product)
    }

    /// A product the caller sells; anything else looks like an unknown product code.
    async fn owned_product(&self, caller: &Caller, code: &str) -> Result<Arc<Product>, ApiError> {
        match self.store.product_shared(code).await? {
            Some(p) if caller.acts_as(&p.seller_account) => Ok(p),
            _ => Err(err(
                ErrorCode::InvalidProductCode,
                format!("product code {code:?} does not match a product published by the calling account"),
            )),
        }
    }

    // ------------------------------------------------------------------ MeterUsage

    pub async fn meter_usage(
        &self,
        caller: &Caller,
        req: MeterUsageRequest,
        audit: &mut Audit,
    ) -> Result<MeterUsageResult, ApiError> {
        let now = self.clock.now();
        let workload = caller.effective_workload().ok_or_else(|| {
            err(
                ErrorCode::AccessDenied,
                "MeterUsage must be called with workload credentials (an EC2 instance, ECS task or EKS pod role)",
            )
        })?;
        let product = self
            .metered_product(
                &req.product_code,
                &[ProductKind::Ami, ProductKind::Container],
                "MeterUsage meters AMI and container products (use BatchMeterUsage for SaaS)",
            )
            .await?;
        if workload.region != caller.signing_region {
            return Err(err(
                ErrorCode::InvalidEndpointRegion,
                format!(
                    "the request was signed for region {} but the calling resource runs in {}; call the endpoint of {}",
                    caller.signing_region, workload.region, workload.region
                ),
            ));
        }
        self.config.windows.check_meter(req.timestamp, now)?;
        if !product.has_dimension(&req.usage_dimension) {
            return Err(unknown_dimension(&product, &req.usage_dimension));
        }
        if product.kind == ProductKind::Container
            && req.usage_dimension == crate::containers::HOURLY_DIMENSION
        {
            // The service meters the hours itself; a MeterUsage of them would bill twice.
            return Err(err(
                ErrorCode::InvalidUsageDimension,
                format!(
                    "dimension {:?} of container product {} is metered by the service from RegisterUsage, not by MeterUsage",
                    req.usage_dimension, product.code
                ),
            ));
        }
        let customer = self.entitled_customer(caller, &product, now).await?;

        let (quantity, _) = meter_usage_quantity(&req);
        let row = UsageRecordRow {
            metering_record_id: new_record_id(),
            key: MeteringKey {
                seller_account: product.seller_account.clone(),
                identity: Identity::Workload {
                    product_code: product.code.clone(),
                    resource_id: workload.resource_id.clone(),
                },
                dimension: req.usage_dimension.clone(),
                hour: hour_bucket(req.timestamp.secs),
            },
            product_code: product.code.clone(),
            customer_identifier: None,
            customer_aws_account_id: Some(customer),
            license_arn: None,
            resource_id: Some(workload.resource_id.clone()),
            timestamp: req.timestamp,
            quantity,
            allocations: stored_allocations(req.usage_allocations.as_deref()),
            operation: MeteringOperation::MeterUsage,
            received_at: now,
        };
        let claim = req.client_token.as_ref().map(|t| TokenClaim {
            seller_account: product.seller_account.clone(),
            caller_account: caller_key(caller),
            client_token: t.clone(),
            fingerprint: meter_fingerprint(&req),
        });

        if req.dry_run == Some(true) {
            return self.dry_run(claim, row).await;
        }
        let outcome = self
            .store
            .commit_meter_usage(claim, row, audit.for_write())
            .await?;
        audit.written();
        meter_answer(outcome)
    }

    /// Every check of a real call, nothing stored (MeterUsage `DryRun`).
    async fn dry_run(
        &self,
        claim: Option<TokenClaim>,
        row: UsageRecordRow,
    ) -> Result<MeterUsageResult, ApiError> {
        if let Some(c) = &claim {
            if let Some((fingerprint, _)) = self
                .store
                .client_token(&c.caller_account, &c.client_token)
                .await?
            {
                if fingerprint != c.fingerprint {
                    return Err(idempotency_conflict());
                }
            }
        }
        if let Some(existing) = self.store.usage_by_key(&row.key).await? {
            if !is_retry(existing.quantity, row.quantity) {
                return Err(duplicate_request());
            }
        }
        Err(err(
            ErrorCode::DryRunOperation,
            "Request would have succeeded, but DryRun flag is set.",
        ))
    }

    async fn metered_product(
        &self,
        code: &str,
        kinds: &[ProductKind],
        wrong_kind: &str,
    ) -> Result<Arc<Product>, ApiError> {
        let product = self.store.product_shared(code).await?.ok_or_else(|| {
            err(
                ErrorCode::InvalidProductCode,
                format!("product code {code:?} does not match any published product"),
            )
        })?;
        if !kinds.contains(&product.kind) {
            return Err(err(
                ErrorCode::InvalidProductCode,
                format!(
                    "product {code} is a {} product; {wrong_kind}",
                    product.kind.as_str()
                ),
            ));
        }
        Ok(product)
    }

    /// The caller's account when it holds an active agreement for the product at `at`;
    /// CustomerNotEntitledException otherwise.
    async fn entitled_customer(
        &self,
        caller: &Caller,
        product: &Product,
        at: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let entitled = match caller.account_id.as_deref() {
            Some(account) => {
                let agreements = self
                    .store
                    .agreements_for_customer(&product.code, account)
                    .await?;
                agreements
                    .iter()
                    .any(|a| a.is_active_at(at))
                    .then(|| account.to_string())
            }
            // Open auth with an unknown key: an entitled anonymous buyer.
            None => caller.open.then(|| "000000000000".to_string()),
        };
        entitled.ok_or_else(|| {
            err(
                ErrorCode::CustomerNotEntitled,
                format!(
                    "the calling account has no active agreement for product {}",
                    product.code
                ),
            )
        })
    }

    // ------------------------------------------------------------------ RegisterUsage

    pub async fn register_usage(
        &self,
        caller: &Caller,
        req: RegisterUsageRequest,
        audit: &mut Audit,
    ) -> Result<RegisterUsageResult, ApiError> {
        let now = self.clock.now();
        let product = self
            .metered_product(
                &req.product_code,
                &[ProductKind::Container],
                "RegisterUsage is for container products",
            )
            .await?;
        let keys = self.store.product_keys(&product.code).await?;
        let key = keys
            .iter()
            .find(|k| k.version == req.public_key_version)
            .ok_or_else(|| {
                let versions: Vec<String> = keys.iter().map(|k| k.version.to_string()).collect();
                err(
                    ErrorCode::InvalidPublicKeyVersion,
                    format!(
                        "public key version {} does not exist for product {} (versions: {})",
                        req.public_key_version,
                        product.code,
                        versions.join(", ")
                    ),
                )
            })?;
        let workload = caller.effective_workload().ok_or_else(|| {
            err(
                ErrorCode::PlatformNotSupported,
                "RegisterUsage must be called from an ECS task, EKS pod or Fargate task",
            )
        })?;
        if workload.region != caller.signing_region {
            return Err(err(
                ErrorCode::InvalidRegion,
                format!("the request was signed for region {} but the task runs in {}; call RegisterUsage in {}", caller.signing_region, workload.region, workload.region),
            ));
        }
        // Signed before the session is stored, so that a stored session (and its audit event,
        // committed with it) always means the call was answered with success.
        let claims = RegisterUsageClaims {
            product_code: product.code.clone(),
            public_key_version: key.version,
            nonce: req.nonce.unwrap_or_default(),
            iat: now.unix_timestamp(),
        };
        let signature = jws::sign(key, &claims).map_err(|e| {
            tracing::error!(error = %e, product = %product.code, "RegisterUsage signing failed");
            ApiError::internal("could not sign the registration; retry the request")
        })?;
        // Platform and entitlement are checked on the first call of a workload's run only
        // (model docs); a call after the run was reported stopped starts a new run.
        if self
            .store
            .container_session(&product.code, &workload.resource_id)
            .await?
            .is_none()
        {
            if !workload.platform.is_container() {
                return Err(err(
                    ErrorCode::PlatformNotSupported,
                    format!(
                        "platform {} is not supported; RegisterUsage runs on ECS, EKS or Fargate",
                        workload.platform.as_str()
                    ),
                ));
            }
            let customer = self.entitled_customer(caller, &product, now).await?;
            let session = ContainerSession {
                product_code: product.code.clone(),
                seller_account: product.seller_account.clone(),
                resource_id: workload.resource_id.clone(),
                customer_account: customer,
                platform: workload.platform,
                region: workload.region.clone(),
                run: 0,
                first_registered_at: now,
                stopped_at: None,
            };
            self.store
                .register_container_session(&session, audit.for_write())
                .await?;
            audit.written();
        }
        Ok(RegisterUsageResult {
            signature,
            public_key_rotation_timestamp: key
                .retired_at
                .map(|t| EpochTime::from_secs(t.unix_timestamp())),
        })
    }

    // ------------------------------------------------------------------ ResolveCustomer

    pub async fn resolve_customer(
        &self,
        caller: &Caller,
        req: ResolveCustomerRequest,
        audit: &mut Audit,
    ) -> Result<ResolveCustomerResult, ApiError> {
        let now = self.clock.now();
        let invalid = || err(ErrorCode::InvalidToken, "registration token is invalid");
        let token = self
            .store
            .registration_token(&req.registration_token)
            .await?
            .ok_or_else(invalid)?;
        // Only the seller of the product resolves its tokens; to anyone else the token does not exist.
        if !caller.acts_as(&token.seller_account) {
            return Err(invalid());
        }
        if now >= token.expires_at {
            return Err(err(
                ErrorCode::ExpiredToken,
                "registration token has expired; ask the buyer to open the product page again",
            ));
        }
        let agreement = self
            .store
            .agreements_for_customer(&token.product_code, &token.customer_account)
            .await?
            .into_iter()
            .find(|a| a.agreement_id == token.agreement_id)
            .ok_or_else(invalid)?;
        // Consumed last, so that a used token (and its audit event, committed with it) always
        // means the call was answered with success.
        if token.single_use {
            let consumed = self
                .store
                .consume_registration_token(&token.token, now, audit.for_write())
                .await?;
            audit.written();
            if !consumed {
                return Err(used_token());
            }
        }
        Ok(ResolveCustomerResult {
            customer_identifier: Some(agreement.customer_identifier),
            product_code: Some(agreement.product_code),
            customer_aws_account_id: Some(agreement.customer_account),
            license_arn: Some(agreement.license_arn),
            metadata: Some(Metadata {
                agreement_id: Some(agreement.agreement_id),
            }),
        })
    }

    /// Mints a registration token for a customer's agreement on a product (the subscribe
    /// redirect AWS performs). Prefers an active agreement.
    pub async fn mint_registration_token(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> Result<RegistrationToken, crate::AdminError> {
        let product = self.store.product(product_code).await?.ok_or_else(|| {
            crate::AdminError::NotFound(format!("product {product_code} does not exist"))
        })?;
        let now = self.clock.now();
        let agreements = self
            .store
            .agreements_for_customer(product_code, customer_account)
            .await?;
        let agreement = agreements
            .iter()
            .find(|a| a.is_active_at(now))
            .or(agreements.first())
            .ok_or_else(|| {
                crate::AdminError::NotFound(format!(
                    "account {customer_account} has no agreement for product {product_code}"
                ))
            })?;
        let token = RegistrationToken {
            token: crate::tokens::new_registration_token(),
            product_code: product.code,
            seller_account: product.seller_account,
            customer_account: customer_account.to_string(),
            agreement_id: agreement.agreement_id.clone(),
            created_at: now,
            expires_at: now + self.config.registration_token_ttl,
            single_use: self.config.single_use_tokens,
            used_at: None,
        };
        self.store.insert_registration_token(&token).await?;
        Ok(token)
    }
}

impl Metering {
    /// Adds the next RegisterUsage key version of a container product.
    pub async fn add_key_version(
        &self,
        product_code: &str,
    ) -> Result<ProductKey, crate::AdminError> {
        let product = self.container_product(product_code).await?;
        let next = self
            .store
            .product_keys(product_code)
            .await?
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            + 1;
        let key = jws::new_product_key(
            &product.code,
            &product.seller_account,
            next,
            self.clock.now(),
        )
        .map_err(|e| crate::AdminError::BadRequest(e.to_string()))?;
        if !self.store.insert_product_key(&key).await? {
            return Err(crate::AdminError::BadRequest(format!(
                "key version {next} was added concurrently; retry"
            )));
        }
        Ok(key)
    }

    /// Retires a key version: it still signs, and RegisterUsage reports the rotation time.
    pub async fn retire_key_version(
        &self,
        product_code: &str,
        version: i64,
    ) -> Result<ProductKey, crate::AdminError> {
        self.container_product(product_code).await?;
        if !self
            .store
            .retire_product_key(product_code, version, self.clock.now())
            .await?
        {
            return Err(crate::AdminError::NotFound(format!(
                "product {product_code} has no key version {version}"
            )));
        }
        self.store
            .product_keys(product_code)
            .await?
            .into_iter()
            .find(|k| k.version == version)
            .ok_or_else(|| {
                crate::AdminError::NotFound(format!(
                    "product {product_code} has no key version {version}"
                ))
            })
    }

    async fn container_product(&self, product_code: &str) -> Result<Product, crate::AdminError> {
        match self.store.product(product_code).await? {
            Some(p) if p.kind == ProductKind::Container => Ok(p),
            Some(p) => Err(crate::AdminError::BadRequest(format!(
                "product {product_code} is a {} product; RegisterUsage keys belong to container products",
                p.kind.as_str()
            ))),
            None => Err(crate::AdminError::NotFound(format!("product {product_code} does not exist"))),
        }
    }
}

fn check_license(
    a: &Agreement,
    r: &UsageRecord,
    product: &Product,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    let arn = &a.license_arn;
    if Some(a.customer_account.as_str()) != r.customer_aws_account_id.as_deref() {
        return Err(err(
            ErrorCode::InvalidLicense,
            format!(
                "LicenseArn {arn} does not belong to customer account {}",
                r.customer_aws_account_id.as_deref().unwrap_or("")
            ),
        ));
    }
    if a.product_code != product.code {
        return Err(err(ErrorCode::InvalidLicense, format!("LicenseArn {arn} is for another product; send one BatchMeterUsage request per product")));
    }
    if !a.covers(at) {
        return Err(err(
            ErrorCode::InvalidLicense,
            format!(
                "usage at {} is outside the activation period of license {arn}",
                crate::windows::rfc3339(at)
            ),
        ));
    }
    Ok(())
}

fn unknown_dimension(product: &Product, dimension: &str) -> ApiError {
    let known: Vec<&str> = product.dimensions.iter().map(|d| d.name.as_str()).collect();
    err(
        ErrorCode::InvalidUsageDimension,
        format!(
            "dimension {dimension:?} is not a dimension of product {} (dimensions: {})",
            product.code,
            known.join(", ")
        ),
    )
}

/// The answer to a MeterUsage whose write ended in `o`.
fn meter_answer(o: MeterOutcome) -> Result<MeterUsageResult, ApiError> {
    match o {
        MeterOutcome::Usage(UsageOutcome::Stored { metering_record_id })
        | MeterOutcome::Usage(UsageOutcome::Retry { metering_record_id })
        | MeterOutcome::TokenReplay { metering_record_id } => {
            Ok(MeterUsageResult { metering_record_id })
        }
        MeterOutcome::Usage(UsageOutcome::Duplicate { .. }) => Err(duplicate_request()),
        MeterOutcome::TokenConflict => Err(idempotency_conflict()),
    }
}

/// The error a MeterUsage whose write ended in `o` is answered with, if any (for its audit).
pub(crate) fn meter_refusal(o: &MeterOutcome) -> Option<ErrorCode> {
    meter_answer(o.clone()).err().map(|e| e.code)
}

/// The answer to resolving a single-use token that was already resolved.
fn used_token() -> ApiError {
    err(
        USED_TOKEN,
        "registration token was already resolved (single-use tokens are enabled)",
    )
}

pub(crate) const USED_TOKEN: ErrorCode = ErrorCode::InvalidToken;

fn duplicate_request() -> ApiError {
    err(ErrorCode::DuplicateRequest, "a record for this resource, dimension and hour was already metered with a different quantity; the first record stands")
}

fn idempotency_conflict() -> ApiError {
    err(
        ErrorCode::IdempotencyConflict,
        "ClientToken was already used with different parameters; use a new token for a new request",
    )
}

/// MeteringRecordId: UUID v7, generated once when first stored (index locality).
pub fn new_record_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Idempotency scope of a caller (its account, or its access key in open mode).
fn caller_key(caller: &Caller) -> String {
    caller
        .account_id
        .clone()
        .or_else(|| caller.access_key_id.clone())
        .unwrap_or_default()
}

fn stored_allocations(allocations: Option<&[UsageAllocation]>) -> Vec<StoredAllocation> {
    allocations
        .unwrap_or_default()
        .iter()
        .map(|a| StoredAllocation {
            quantity: allocation_quantity(a),
            tags: a
                .tags
                .iter()
                .flatten()
                .map(|t| AllocationTag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Digest of the parameters that define a MeterUsage call (for ClientToken replays).
fn meter_fingerprint(req: &MeterUsageRequest) -> String {
    let (quantity, _) = meter_usage_quantity(req);
    let allocations: Vec<(u64, Vec<(&str, &str)>)> = req
        .usage_allocations
        .iter()
        .flatten()
        .map(|a| (allocation_quantity(a).micros(), tag_set(a)))
        .collect();
    let canonical = serde_json::json!([
        req.product_code,
        req.timestamp.secs,
        req.timestamp.nanos,
        req.usage_dimension,
        quantity.micros(),
        allocations,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}
