//! A minimal in-memory `Store` for rule tests (the real stores have their own conformance suite).

use async_trait::async_trait;
use marketmeter_domain::audit::{AuditEvent, AuditFilter, AuditRecord};
use marketmeter_domain::dedup::is_retry;
use marketmeter_domain::model::*;
use marketmeter_domain::store::*;
use std::collections::HashMap;
use std::sync::Mutex;
use time::OffsetDateTime;

#[derive(Default)]
pub struct MemoryStore {
    s: Mutex<State>,
}

#[derive(Default)]
struct State {
    accounts: std::collections::BTreeMap<String, Account>,
    keys: HashMap<String, AccessKey>,
    products: HashMap<String, Product>,
    agreements: Vec<Agreement>,
    tokens: HashMap<String, RegistrationToken>,
    product_keys: Vec<ProductKey>,
    sessions: Vec<ContainerSession>,
    usage: Vec<UsageRecordRow>,
    client_tokens: HashMap<(String, String), (String, String)>,
    audit: Vec<AuditEvent>,
    /// Usage writes fail (the database is down), writing nothing.
    usage_fails: bool,
}

impl State {
    fn offer(&mut self, row: UsageRecordRow) -> UsageOutcome {
        match self.usage.iter().find(|r| r.key == row.key) {
            Some(r) if is_retry(r.quantity, row.quantity) => UsageOutcome::Retry {
                metering_record_id: r.metering_record_id.clone(),
            },
            Some(r) => UsageOutcome::Duplicate {
                metering_record_id: r.metering_record_id.clone(),
            },
            None => {
                let id = row.metering_record_id.clone();
                self.usage.push(row);
                UsageOutcome::Stored {
                    metering_record_id: id,
                }
            }
        }
    }
}

impl MemoryStore {
    pub fn usage_count(&self) -> usize {
        self.s.lock().unwrap().usage.len()
    }
}

impl MemoryStore {
    fn meter(&self, claim: Option<TokenClaim>, row: UsageRecordRow) -> MeterOutcome {
        let mut s = self.s.lock().unwrap();
        if let Some(c) = &claim {
            if let Some((fp, id)) = s
                .client_tokens
                .get(&(c.caller_account.clone(), c.client_token.clone()))
            {
                return if *fp == c.fingerprint {
                    MeterOutcome::TokenReplay {
                        metering_record_id: id.clone(),
                    }
                } else {
                    MeterOutcome::TokenConflict
                };
            }
        }
        let outcome = s.offer(row);
        if let (
            Some(c),
            UsageOutcome::Stored { metering_record_id }
            | UsageOutcome::Retry { metering_record_id },
        ) = (&claim, &outcome)
        {
            s.client_tokens.insert(
                (c.caller_account.clone(), c.client_token.clone()),
                (c.fingerprint.clone(), metering_record_id.clone()),
            );
        }
        MeterOutcome::Usage(outcome)
    }

    /// From now on usage writes fail as an unavailable database would.
    pub fn fail_usage_writes(&self) {
        self.s.lock().unwrap().usage_fails = true;
    }

    /// Every audit event recorded, in order.
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.s.lock().unwrap().audit.clone()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn access_key(&self, id: &str) -> StoreResult<Option<AccessKey>> {
        Ok(self.s.lock().unwrap().keys.get(id).cloned())
    }
    async fn product(&self, code: &str) -> StoreResult<Option<Product>> {
        Ok(self.s.lock().unwrap().products.get(code).cloned())
    }
    async fn agreement_by_license(&self, arn: &str) -> StoreResult<Option<Agreement>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .agreements
            .iter()
            .find(|a| a.license_arn == arn)
            .cloned())
    }
    async fn agreements_for_customer(&self, p: &str, c: &str) -> StoreResult<Vec<Agreement>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .agreements
            .iter()
            .filter(|a| a.product_code == p && a.customer_account == c)
            .cloned()
            .collect())
    }
    async fn agreements_for_identifier(&self, p: &str, ci: &str) -> StoreResult<Vec<Agreement>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .agreements
            .iter()
            .filter(|a| a.product_code == p && a.customer_identifier == ci)
            .cloned()
            .collect())
    }
    async fn customer_identifier_exists(&self, ci: &str) -> StoreResult<bool> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .agreements
            .iter()
            .any(|a| a.customer_identifier == ci))
    }
    async fn customer_identifier_of(&self, c: &str) -> StoreResult<Option<String>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .agreements
            .iter()
            .find(|a| a.customer_account == c)
            .map(|a| a.customer_identifier.clone()))
    }
    async fn product_keys(&self, p: &str) -> StoreResult<Vec<ProductKey>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .product_keys
            .iter()
            .filter(|k| k.product_code == p)
            .cloned()
            .collect())
    }
    async fn registration_token(&self, t: &str) -> StoreResult<Option<RegistrationToken>> {
        Ok(self.s.lock().unwrap().tokens.get(t).cloned())
    }
    async fn container_session(&self, p: &str, r: &str) -> StoreResult<Option<ContainerSession>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .sessions
            .iter()
            .find(|s| s.product_code == p && s.resource_id == r && s.stopped_at.is_none())
            .cloned())
    }
    async fn list_container_sessions(
        &self,
        f: &ContainerFilter,
    ) -> StoreResult<Vec<ContainerSession>> {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let mut out: Vec<ContainerSession> = self
            .s
            .lock()
            .unwrap()
            .sessions
            .iter()
            .filter(|s| {
                eq(&f.seller_account, &s.seller_account)
                    && eq(&f.product_code, &s.product_code)
                    && eq(&f.customer_account, &s.customer_account)
                    && eq(&f.resource_id, &s.resource_id)
                    && f.running.is_none_or(|r| r == s.stopped_at.is_none())
                    && f.started_before.is_none_or(|t| s.first_registered_at < t)
                    && f.stopped_since
                        .is_none_or(|t| s.stopped_at.is_none_or(|e| e >= t))
            })
            .cloned()
            .collect();
        out.sort_by_key(|s| s.first_registered_at);
        out.truncate(f.limit.map_or(usize::MAX, |l| l as usize));
        Ok(out)
    }
    async fn usage_records(&self, f: &UsageFilter) -> StoreResult<Vec<UsageRecordRow>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .usage
            .iter()
            .filter(|r| {
                f.product_code
                    .as_deref()
                    .is_none_or(|p| p == r.product_code)
            })
            .cloned()
            .collect())
    }
    async fn usage_by_key(&self, key: &MeteringKey) -> StoreResult<Option<UsageRecordRow>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .usage
            .iter()
            .find(|r| &r.key == key)
            .cloned())
    }
    async fn client_token(&self, a: &str, t: &str) -> StoreResult<Option<(String, String)>> {
        Ok(self
            .s
            .lock()
            .unwrap()
            .client_tokens
            .get(&(a.to_string(), t.to_string()))
            .cloned())
    }
    async fn commit_usage(
        &self,
        rows: Vec<UsageRecordRow>,
        event: AuditEvent,
    ) -> StoreResult<Vec<UsageOutcome>> {
        let mut s = self.s.lock().unwrap();
        if s.usage_fails {
            return Err(StoreError::Unavailable("down".into()));
        }
        s.audit.push(event);
        Ok(rows.into_iter().map(|r| s.offer(r)).collect())
    }
    async fn commit_meter_usage(
        &self,
        claim: Option<TokenClaim>,
        row: UsageRecordRow,
        event: AuditEvent,
    ) -> StoreResult<MeterOutcome> {
        let out = self.meter(claim, row);
        self.s.lock().unwrap().audit.push(event.settle_meter(&out));
        Ok(out)
    }
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        self.s.lock().unwrap().audit.push(event);
        Ok(())
    }
    async fn audit_events(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let s = self.s.lock().unwrap();
        Ok(s.audit
            .iter()
            .enumerate()
            .map(|(i, e)| AuditRecord {
                seq: i as i64 + 1,
                event: e.clone(),
            })
            .filter(|r| f.after.is_none_or(|a| r.seq > a))
            .take(f.page_size() as usize)
            .collect())
    }
    async fn insert_registration_token(&self, t: &RegistrationToken) -> StoreResult<()> {
        self.s
            .lock()
            .unwrap()
            .tokens
            .insert(t.token.clone(), t.clone());
        Ok(())
    }
    async fn consume_registration_token(
        &self,
        t: &str,
        at: OffsetDateTime,
        event: AuditEvent,
    ) -> StoreResult<bool> {
        let mut s = self.s.lock().unwrap();
        let consumed = match s.tokens.get_mut(t) {
            Some(tok) if tok.used_at.is_none() => {
                tok.used_at = Some(at);
                true
            }
            _ => false,
        };
        s.audit.push(event.settle_consume(consumed));
        Ok(consumed)
    }
    async fn register_container_session(
        &self,
        c: &ContainerSession,
        event: AuditEvent,
    ) -> StoreResult<ContainerSession> {
        let mut s = self.s.lock().unwrap();
        s.audit.push(event);
        let mine = |x: &&ContainerSession| {
            x.product_code == c.product_code && x.resource_id == c.resource_id
        };
        if let Some(running) = s
            .sessions
            .iter()
            .filter(mine)
            .find(|x| x.stopped_at.is_none())
        {
            return Ok(running.clone());
        }
        let run = s
            .sessions
            .iter()
            .filter(mine)
            .map(|x| x.run)
            .max()
            .unwrap_or(0)
            + 1;
        let new = ContainerSession {
            run,
            stopped_at: None,
            ..c.clone()
        };
        s.sessions.push(new.clone());
        Ok(new)
    }
    async fn stop_container_session(
        &self,
        p: &str,
        r: &str,
        at: OffsetDateTime,
    ) -> StoreResult<Option<ContainerSession>> {
        let mut s = self.s.lock().unwrap();
        Ok(s.sessions
            .iter_mut()
            .find(|x| {
                x.product_code == p
                    && x.resource_id == r
                    && x.stopped_at.is_none()
                    && x.first_registered_at <= at
            })
            .map(|x| {
                x.stopped_at = Some(at);
                x.clone()
            }))
    }
    async fn upsert_account(&self, a: &Account) -> StoreResult<()> {
        self.s
            .lock()
            .unwrap()
            .accounts
            .insert(a.id.clone(), a.clone());
        Ok(())
    }
    async fn upsert_access_key(&self, k: &AccessKey) -> StoreResult<()> {
        self.s
            .lock()
            .unwrap()
            .keys
            .insert(k.access_key_id.clone(), k.clone());
        Ok(())
    }
    async fn upsert_product(&self, p: &Product) -> StoreResult<()> {
        self.s
            .lock()
            .unwrap()
            .products
            .insert(p.code.clone(), p.clone());
        Ok(())
    }
    async fn upsert_agreement(&self, a: &Agreement) -> StoreResult<()> {
        let mut s = self.s.lock().unwrap();
        s.agreements.retain(|x| x.agreement_id != a.agreement_id);
        s.agreements.push(a.clone());
        Ok(())
    }
    async fn insert_product_key(&self, k: &ProductKey) -> StoreResult<bool> {
        let mut s = self.s.lock().unwrap();
        if s.product_keys
            .iter()
            .any(|x| x.product_code == k.product_code && x.version == k.version)
        {
            return Ok(false);
        }
        s.product_keys.push(k.clone());
        Ok(true)
    }
    async fn retire_product_key(&self, p: &str, v: i64, at: OffsetDateTime) -> StoreResult<bool> {
        let mut s = self.s.lock().unwrap();
        let mut found = false;
        for k in s
            .product_keys
            .iter_mut()
            .filter(|k| k.product_code == p && k.version == v)
        {
            k.retired_at.get_or_insert(at);
            found = true;
        }
        Ok(found)
    }
    async fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        Ok(self.s.lock().unwrap().accounts.get(id).cloned())
    }
    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        Ok(self.s.lock().unwrap().accounts.values().cloned().collect())
    }
    async fn list_access_keys(&self, account: Option<&str>) -> StoreResult<Vec<AccessKey>> {
        let mut keys: Vec<AccessKey> = (self.s.lock().unwrap().keys.values())
            .filter(|k| account.is_none_or(|a| k.account_id == a))
            .cloned()
            .collect();
        keys.sort_by(|a, b| {
            (&a.account_id, &a.access_key_id).cmp(&(&b.account_id, &b.access_key_id))
        });
        Ok(keys)
    }
    async fn delete_access_key(&self, id: &str) -> StoreResult<bool> {
        Ok(self.s.lock().unwrap().keys.remove(id).is_some())
    }
    async fn list_products(&self, seller: Option<&str>) -> StoreResult<Vec<Product>> {
        Ok((self.s.lock().unwrap().products.values())
            .filter(|p| seller.is_none_or(|s| p.seller_account == s))
            .cloned()
            .collect())
    }
    async fn delete_product(&self, code: &str) -> StoreResult<ProductDeletion> {
        let mut s = self.s.lock().unwrap();
        if s.agreements.iter().any(|a| a.product_code == code)
            || s.usage.iter().any(|u| u.product_code == code)
        {
            return Ok(ProductDeletion::InUse("agreements or usage".into()));
        }
        s.product_keys.retain(|k| k.product_code != code);
        Ok(match s.products.remove(code) {
            Some(_) => ProductDeletion::Deleted,
            None => ProductDeletion::NotFound,
        })
    }
    async fn list_agreements(&self, f: &AgreementFilter) -> StoreResult<Vec<Agreement>> {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        Ok((self.s.lock().unwrap().agreements.iter())
            .filter(|a| is(&f.product_code, &a.product_code))
            .filter(|a| is(&f.customer_account, &a.customer_account))
            .filter(|a| is(&f.agreement_id, &a.agreement_id))
            .cloned()
            .collect())
    }
    async fn usage_groups(
        &self,
        q: &marketmeter_domain::reports::GroupQuery,
    ) -> StoreResult<Vec<marketmeter_domain::reports::UsageGroup>> {
        // Rule tests never report; the real stores' conformance suite covers this.
        let _ = q;
        Err(StoreError::Unavailable(
            "reports are not modelled by the rule-test store".into(),
        ))
    }

    async fn reset_metering(&self) -> StoreResult<ResetCounts> {
        let mut s = self.s.lock().unwrap();
        let counts = [
            s.usage.len(),
            s.client_tokens.len(),
            s.tokens.len(),
            s.sessions.len(),
        ]
        .map(|n| n as u64);
        s.usage.clear();
        s.client_tokens.clear();
        s.tokens.clear();
        s.sessions.clear();
        Ok(ResetCounts::from_counts(counts))
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
