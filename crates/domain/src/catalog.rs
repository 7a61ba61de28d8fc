//! The seller catalog as the admin API and seeds change it: accounts, access keys, products and
//! agreements. Every write here checks its references against the store and takes effect at once
//! on the metering API (nothing is cached). Seeds check references within themselves first and
//! then write through these same functions.

use crate::model::*;
use crate::seed::{default_agreement_id, default_customer_identifier, default_license_arn};
use crate::store::{AgreementFilter, ProductDeletion, Store};
use crate::{jws, AdminError};
use time::OffsetDateTime;

/// The catalog over a store, at `now` (key versions are stamped with it).
pub struct Catalog<'a> {
    store: &'a dyn Store,
    now: OffsetDateTime,
}

/// What a new access key stands for.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub account: String,
    /// A workload credential (EC2 instance, ECS task, EKS pod) when set.
    pub workload: Option<Workload>,
    /// Temporary credentials (`ASIA...` with a session token), as AWS gives instances and tasks.
    /// Workload credentials always have one.
    pub session_token: bool,
}

/// An agreement to create or replace; unset values get the same defaults as in seeds.
#[derive(Debug, Clone)]
pub struct AgreementSpec {
    pub product: String,
    pub customer_account: String,
    pub customer_identifier: Option<String>,
    pub license_arn: Option<String>,
    pub agreement_id: Option<String>,
    pub status: AgreementStatus,
    pub starts: Option<OffsetDateTime>,
    pub ends: Option<OffsetDateTime>,
}

fn bad(m: impl Into<String>) -> AdminError {
    AdminError::BadRequest(m.into())
}

/// A write the store refuses (a code or license of another seller) is the caller's input.
fn refused_by_store(e: crate::StoreError) -> AdminError {
    match e {
        crate::StoreError::Invalid(m) => AdminError::BadRequest(m),
        other => other.into(),
    }
}

/// The model's CustomerAWSAccountId: 1-255 digits (real AWS account ids have 12).
pub fn is_account_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The model's ProductCode pattern `^[-a-zA-Z0-9/=:_.@]+$`, 1 to 255 characters.
pub fn is_product_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 255
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/=:_.@".contains(&b))
}

/// A price per unit: a plain non-negative decimal (`0.0001`, `12`), never a float.
fn is_price(p: &str) -> bool {
    let (int, frac) = p.split_once('.').unwrap_or((p, "0"));
    p.len() <= 32
        && !int.is_empty()
        && !frac.is_empty()
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

/// Checks a product's own fields (not its references).
pub fn check_product(p: &Product) -> Result<(), String> {
    if !is_product_code(&p.code) {
        return Err(format!(
            "code {:?} must be 1-255 characters of a-z A-Z 0-9 - / = : _ . @",
            p.code
        ));
    }
    if p.dimensions.is_empty() {
        return Err(format!("product {} needs at least one dimension", p.code));
    }
    for (i, d) in p.dimensions.iter().enumerate() {
        if d.name.is_empty() || d.name.len() > 255 {
            return Err(format!("dimensions[{i}].name must be 1-255 characters"));
        }
        if p.dimensions[..i].iter().any(|e| e.name == d.name) {
            return Err(format!("dimensions[{i}].name {:?} appears twice", d.name));
        }
        if let Some(price) = d.price.as_deref().filter(|p| !is_price(p)) {
            return Err(format!(
                "dimensions[{i}].price {price:?} must be a decimal like 0.0001"
            ));
        }
    }
    if let Some(url) = &p.fulfillment_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "fulfillment_url {url:?} must be an http:// or https:// URL"
            ));
        }
    }
    Ok(())
}

impl<'a> Catalog<'a> {
    pub fn new(store: &'a dyn Store, now: OffsetDateTime) -> Self {
        Self { store, now }
    }

    pub async fn put_account(&self, account: &Account) -> Result<(), AdminError> {
        if !is_account_id(&account.id) {
            return Err(bad(format!(
                "account id {:?} must be digits, like 111122223333",
                account.id
            )));
        }
        Ok(self.store.upsert_account(account).await?)
    }

    async fn existing_account(&self, id: &str, role: &str) -> Result<Account, AdminError> {
        self.store.account(id).await?.ok_or_else(|| {
            AdminError::NotFound(format!(
                "{role} account {id} does not exist; create it first (PUT /admin/v1/accounts/{id})"
            ))
        })
    }

    /// Stores a key as given (seeds name their keys and secrets).
    pub async fn put_access_key(&self, key: &AccessKey) -> Result<(), AdminError> {
        self.existing_account(&key.account_id, "the key's").await?;
        if key.access_key_id.len() < 16
            || key.access_key_id.len() > 128
            || !key.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad(format!(
                "access_key_id {:?} must be 16-128 letters and digits",
                key.access_key_id
            )));
        }
        if key.secret_access_key.is_empty() {
            return Err(bad("secret_access_key must not be empty"));
        }
        Ok(self.store.upsert_access_key(key).await?)
    }

    /// Generates a key for an account; the only time its secret is handed out.
    pub async fn create_access_key(&self, req: &NewAccessKey) -> Result<AccessKey, AdminError> {
        self.existing_account(&req.account, "the key's").await?;
        if let Some(w) = &req.workload {
            if w.resource_id.is_empty() || w.region.is_empty() {
                return Err(bad("workload needs resource_id and region"));
            }
        }
        let (id, secret, session) =
            crate::tokens::new_access_key(req.session_token || req.workload.is_some());
        let key = AccessKey {
            access_key_id: id,
            account_id: req.account.clone(),
            secret_access_key: secret,
            session_token: session,
            workload: req.workload.clone(),
        };
        self.store.upsert_access_key(&key).await?;
        Ok(key)
    }

    /// Revokes a key at once: requests signed with it fail from now on.
    pub async fn revoke_access_key(&self, access_key_id: &str) -> Result<(), AdminError> {
        if self.store.delete_access_key(access_key_id).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!(
                "access key {access_key_id} does not exist"
            )))
        }
    }

    /// A new key for the same account and workload, then the old one revoked.
    pub async fn rotate_access_key(&self, access_key_id: &str) -> Result<AccessKey, AdminError> {
        let old = self.store.access_key(access_key_id).await?.ok_or_else(|| {
            AdminError::NotFound(format!("access key {access_key_id} does not exist"))
        })?;
        let new = self
            .create_access_key(&NewAccessKey {
                account: old.account_id.clone(),
                workload: old.workload.clone(),
                session_token: old.session_token.is_some(),
            })
            .await?;
        self.store.delete_access_key(access_key_id).await?;
        Ok(new)
    }

    /// Creates or replaces a product; a new container product gets RegisterUsage key version 1.
    /// Returns how many signing keys it created (0 or 1).
    pub async fn put_product(&self, product: &Product) -> Result<usize, AdminError> {
        check_product(product).map_err(bad)?;
        self.existing_account(&product.seller_account, "the seller")
            .await?;
        // The store refuses a code that belongs to another seller.
        self.store
            .upsert_product(product)
            .await
            .map_err(refused_by_store)?;
        if product.kind == ProductKind::Container
            && self.store.product_keys(&product.code).await?.is_empty()
        {
            let key = jws::new_product_key(&product.code, &product.seller_account, 1, self.now)
                .map_err(|e| bad(format!("could not create the signing key: {e}")))?;
            return Ok(usize::from(self.store.insert_product_key(&key).await?));
        }
        Ok(0)
    }

    /// Deletes a product nothing refers to (no agreements, usage, tokens or sessions).
    pub async fn delete_product(&self, code: &str) -> Result<(), AdminError> {
        match self.store.delete_product(code).await? {
            ProductDeletion::Deleted => Ok(()),
            ProductDeletion::NotFound => Err(AdminError::NotFound(format!(
                "product {code} does not exist"
            ))),
            ProductDeletion::InUse(what) => Err(bad(format!(
                "product {code} is in use ({what}); cancel its agreements instead"
            ))),
        }
    }

    /// Creates or replaces an agreement; defaults as in seeds (the customer identifier is the
    /// one this customer already has, else derived from the account).
    pub async fn put_agreement(&self, spec: &AgreementSpec) -> Result<Agreement, AdminError> {
        if !is_account_id(&spec.customer_account) {
            return Err(bad(format!(
                "customer_account {:?} must be digits, like 444455556666",
                spec.customer_account
            )));
        }
        if let (Some(s), Some(e)) = (spec.starts, spec.ends) {
            if e <= s {
                return Err(bad("ends must be after starts"));
            }
        }
        let product = self.store.product(&spec.product).await?.ok_or_else(|| {
            AdminError::NotFound(format!("product {} does not exist", spec.product))
        })?;
        let seller = &product.seller_account;
        let customer_identifier = match &spec.customer_identifier {
            Some(c) if c.is_empty() => return Err(bad("customer_identifier must not be empty")),
            Some(c) => c.clone(),
            None => self.customer_identifier(&spec.customer_account).await?,
        };
        let agreement = Agreement {
            agreement_id: spec
                .agreement_id
                .clone()
                .unwrap_or_else(|| default_agreement_id(&spec.product, &spec.customer_account)),
            product_code: product.code.clone(),
            seller_account: seller.clone(),
            customer_account: spec.customer_account.clone(),
            customer_identifier,
            license_arn: spec.license_arn.clone().unwrap_or_else(|| {
                default_license_arn(seller, &spec.product, &spec.customer_account)
            }),
            status: spec.status,
            starts: spec.starts,
            ends: spec.ends,
        };
        self.store
            .upsert_agreement(&agreement)
            .await
            .map_err(refused_by_store)?;
        Ok(agreement)
    }

    /// The identifier a buyer is known by: the one it already has (the same across products),
    /// else one derived from its account.
    pub async fn customer_identifier(&self, customer_account: &str) -> Result<String, AdminError> {
        Ok(self
            .store
            .customer_identifier_of(customer_account)
            .await?
            .unwrap_or_else(|| default_customer_identifier(customer_account)))
    }

    /// The agreement with this id (ids are unique per seller; `seller` picks one when several
    /// sellers use the same id).
    pub async fn agreement(
        &self,
        agreement_id: &str,
        seller: Option<&str>,
    ) -> Result<Agreement, AdminError> {
        let found: Vec<Agreement> = self
            .store
            .list_agreements(&AgreementFilter {
                agreement_id: Some(agreement_id.to_string()),
                ..AgreementFilter::default()
            })
            .await?
            .into_iter()
            .filter(|a| seller.is_none_or(|s| a.seller_account == s))
            .collect();
        match found.len() {
            0 => Err(AdminError::NotFound(format!(
                "agreement {agreement_id} does not exist"
            ))),
            1 => Ok(found.into_iter().next().expect("one")),
            _ => Err(bad(format!(
                "several sellers have an agreement {agreement_id}; add ?seller=ACCOUNT"
            ))),
        }
    }

    /// Cancels, expires or re-activates an agreement; metering sees the change at once.
    /// Returns the agreement and whether its status changed.
    pub async fn set_agreement_status(
        &self,
        agreement_id: &str,
        seller: Option<&str>,
        status: AgreementStatus,
    ) -> Result<(Agreement, bool), AdminError> {
        let mut agreement = self.agreement(agreement_id, seller).await?;
        let changed = agreement.status != status;
        agreement.status = status;
        self.store.upsert_agreement(&agreement).await?;
        Ok((agreement, changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(dims: &[(&str, Option<&str>)]) -> Product {
        Product {
            code: "p-1".into(),
            seller_account: "111122223333".into(),
            kind: ProductKind::Saas,
            fulfillment_url: None,
            dimensions: dims
                .iter()
                .map(|(n, p)| Dimension {
                    name: n.to_string(),
                    unit: None,
                    price: p.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn product_checks_name_the_field() {
        assert!(check_product(&product(&[("a", Some("0.0001")), ("b", Some("12"))])).is_ok());
        for (dims, field) in [
            (vec![], "at least one dimension"),
            (vec![("a", None), ("a", None)], "dimensions[1].name"),
            (vec![("", None)], "dimensions[0].name"),
            (vec![("a", Some("1e3"))], "dimensions[0].price"),
            (vec![("a", Some("-1"))], "dimensions[0].price"),
            (vec![("a", Some("1."))], "dimensions[0].price"),
            (vec![("a", Some(".5"))], "dimensions[0].price"),
        ] {
            let err = check_product(&product(&dims)).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
        let mut p = product(&[("a", None)]);
        p.code = "bad code".into();
        assert!(check_product(&p).unwrap_err().contains("code"));
        p.code = "ok".into();
        p.fulfillment_url = Some("ftp://x".into());
        assert!(check_product(&p).unwrap_err().contains("fulfillment_url"));
    }

    #[test]
    fn account_ids_are_digits() {
        assert!(is_account_id("111122223333"));
        assert!(!is_account_id(""));
        assert!(!is_account_id("11112222333a"));
    }
}
