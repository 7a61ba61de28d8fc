//! The authenticated caller of a metering operation.

use crate::model::Workload;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account the access key belongs to; `None` only in open-auth mode for unknown keys.
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    /// Set for workload credentials (EC2 instance, ECS task, EKS pod).
    pub workload: Option<Workload>,
    /// Region from the SigV4 credential scope: the endpoint region the client called.
    pub signing_region: String,
    /// Open-auth mode: signatures are not verified and unknown callers act as any account.
    pub open: bool,
}

impl Caller {
    /// Whether this caller may act as `account` (the seller owning a product, say).
    pub fn acts_as(&self, account: &str) -> bool {
        match &self.account_id {
            Some(id) => id == account,
            None => self.open,
        }
    }
}

impl Caller {
    /// The resource a buyer workload runs on. In open-auth mode an unknown caller is a
    /// synthetic ECS task in the signing region, named after its access key.
    pub fn effective_workload(&self) -> Option<Workload> {
        if let Some(w) = &self.workload {
            return Some(w.clone());
        }
        (self.open && self.account_id.is_none()).then(|| Workload {
            resource_id: self
                .access_key_id
                .clone()
                .unwrap_or_else(|| "anonymous".to_string()),
            platform: crate::model::Platform::Ecs,
            region: self.signing_region.clone(),
        })
    }
}
