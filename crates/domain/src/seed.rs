//! Seed files: accounts, keys, products and agreements loaded idempotently (loading the same
//! seed twice changes nothing, because every generated value is derived from the seed itself).

use crate::catalog::{is_account_id, is_product_code, AgreementSpec, Catalog};
use crate::model::*;
use crate::store::{Store, StoreError};
use crate::AdminError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub accounts: Vec<SeedAccount>,
    #[serde(default)]
    pub keys: Vec<SeedKey>,
    #[serde(default)]
    pub products: Vec<SeedProduct>,
    #[serde(default)]
    pub agreements: Vec<SeedAgreement>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    pub account: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub resource: Option<String>,
    pub platform: Option<Platform>,
    pub resource_region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProduct {
    pub code: String,
    pub seller: String,
    pub kind: ProductKind,
    pub fulfillment_url: Option<String>,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAgreement {
    pub product: String,
    pub customer_account: String,
    pub customer_identifier: Option<String>,
    pub license_arn: Option<String>,
    pub agreement_id: Option<String>,
    #[serde(default = "active")]
    pub status: AgreementStatus,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends: Option<OffsetDateTime>,
}

fn active() -> AgreementStatus {
    AgreementStatus::Active
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What loading a seed did, for the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub accounts: usize,
    pub keys: usize,
    pub products: usize,
    pub agreements: usize,
    pub new_signing_keys: usize,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Deterministic defaults, so that a seed without them still loads idempotently.
pub fn default_customer_identifier(customer_account: &str) -> String {
    format!("cust-{}", &digest(&["customer", customer_account])[..16])
}
pub fn default_license_arn(seller: &str, product: &str, customer_account: &str) -> String {
    format!(
        "arn:aws:license-manager::{seller}:license/l-{}",
        &digest(&["license", product, customer_account])[..32]
    )
}
pub fn default_agreement_id(product: &str, customer_account: &str) -> String {
    format!(
        "agmt-{}",
        &digest(&["agreement", product, customer_account])[..24]
    )
}

impl Seed {
    /// Checks references and formats before anything is written.
    pub fn check(&self) -> Result<(), SeedError> {
        let bad = |m: String| Err(SeedError::Invalid(m));
        let accounts: Vec<&str> = self.accounts.iter().map(|a| a.id.as_str()).collect();
        for a in &self.accounts {
            if !is_account_id(&a.id) {
                return bad(format!("account id {:?} must be digits", a.id));
            }
        }
        for k in &self.keys {
            if !accounts.contains(&k.account.as_str()) {
                return bad(format!(
                    "key {} names account {} which is not in [[accounts]]",
                    k.access_key_id, k.account
                ));
            }
            if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                return bad("keys need access_key_id and secret_access_key".into());
            }
            match (&k.resource, &k.platform, &k.resource_region) {
                (Some(_), Some(_), Some(_)) | (None, None, None) => {}
                _ => {
                    return bad(format!(
                        "key {}: resource, platform and resource_region go together",
                        k.access_key_id
                    ))
                }
            }
        }
        for p in &self.products {
            if !is_product_code(&p.code) {
                return bad(format!(
                    "product code {:?} must match ^[-a-zA-Z0-9/=:_.@]+$",
                    p.code
                ));
            }
            if !accounts.contains(&p.seller.as_str()) {
                return bad(format!(
                    "product {} names seller {} which is not in [[accounts]]",
                    p.code, p.seller
                ));
            }
            if p.dimensions.is_empty() {
                return bad(format!("product {} needs at least one dimension", p.code));
            }
        }
        for a in &self.agreements {
            if !self.products.iter().any(|p| p.code == a.product) {
                return bad(format!(
                    "agreement names product {} which is not in [[products]]",
                    a.product
                ));
            }
            if !is_account_id(&a.customer_account) {
                return bad(format!(
                    "agreement customer_account {:?} must be digits",
                    a.customer_account
                ));
            }
        }
        Ok(())
    }

    /// Writes the seed (upserts) through the catalog's rules. Container products get key
    /// version 1 when they have none.
    pub async fn apply(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
    ) -> Result<SeedReport, SeedError> {
        self.check()?;
        let catalog = Catalog::new(store, now);
        let mut report = SeedReport::default();
        for a in &self.accounts {
            let account = Account {
                id: a.id.clone(),
                name: a.name.clone(),
            };
            catalog.put_account(&account).await.map_err(invalid)?;
            report.accounts += 1;
        }
        for k in &self.keys {
            let workload = match (&k.resource, k.platform, &k.resource_region) {
                (Some(r), Some(p), Some(region)) => Some(Workload {
                    resource_id: r.clone(),
                    platform: p,
                    region: region.clone(),
                }),
                _ => None,
            };
            let key = AccessKey {
                access_key_id: k.access_key_id.clone(),
                account_id: k.account.clone(),
                secret_access_key: k.secret_access_key.clone(),
                session_token: k.session_token.clone(),
                workload,
            };
            catalog.put_access_key(&key).await.map_err(invalid)?;
            report.keys += 1;
        }
        for p in &self.products {
            let product = Product {
                code: p.code.clone(),
                seller_account: p.seller.clone(),
                kind: p.kind,
                fulfillment_url: p.fulfillment_url.clone(),
                dimensions: p.dimensions.clone(),
            };
            report.new_signing_keys += catalog.put_product(&product).await.map_err(invalid)?;
            report.products += 1;
        }
        for a in &self.agreements {
            let spec = AgreementSpec {
                product: a.product.clone(),
                customer_account: a.customer_account.clone(),
                customer_identifier: a.customer_identifier.clone(),
                license_arn: a.license_arn.clone(),
                agreement_id: a.agreement_id.clone(),
                status: a.status,
                starts: a.starts,
                ends: a.ends,
            };
            catalog.put_agreement(&spec).await.map_err(invalid)?;
            report.agreements += 1;
        }
        Ok(report)
    }
}

/// A catalog refusal while seeding is the seed's fault; a store failure stays one.
fn invalid(e: AdminError) -> SeedError {
    match e {
        AdminError::Store(e) => SeedError::Store(e),
        AdminError::NotFound(m) | AdminError::BadRequest(m) => SeedError::Invalid(m),
    }
}
