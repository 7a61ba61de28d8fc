//! The SaaS subscribe and unsubscribe flows, as AWS Marketplace runs them for a buyer, and the
//! notifications they raise. Posting the registration token to the seller's fulfillment URL and
//! delivering notifications are I/O, done by the server with what these functions return.

use crate::catalog::{AgreementSpec, Catalog};
use crate::model::*;
use crate::store::AgreementFilter;
use crate::{AdminError, Metering};

/// What AWS tells a seller's SNS subscribers; `action` values are AWS's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub action: NotificationAction,
    pub product_code: String,
    pub customer_identifier: String,
    pub customer_account: String,
    pub free_trial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationAction {
    SubscribeSuccess,
    SubscribeFail,
    UnsubscribePending,
    UnsubscribeSuccess,
    /// The buyer's entitlement changed (agreement activated, cancelled, expired).
    EntitlementUpdated,
}

impl NotificationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscribeSuccess => "subscribe-success",
            Self::SubscribeFail => "subscribe-fail",
            Self::UnsubscribePending => "unsubscribe-pending",
            Self::UnsubscribeSuccess => "unsubscribe-success",
            Self::EntitlementUpdated => "entitlement-updated",
        }
    }

    /// AWS publishes subscription events and entitlement events on separate topics.
    pub fn is_entitlement(self) -> bool {
        self == Self::EntitlementUpdated
    }
}

impl Notification {
    pub fn about(agreement: &Agreement, action: NotificationAction, free_trial: bool) -> Self {
        Self {
            action,
            product_code: agreement.product_code.clone(),
            customer_identifier: agreement.customer_identifier.clone(),
            customer_account: agreement.customer_account.clone(),
            free_trial,
        }
    }
}

/// A buyer's subscription request.
#[derive(Debug, Clone)]
pub struct Subscribe {
    pub product_code: String,
    pub customer_account: String,
    pub free_trial: bool,
    /// Simulates a failed subscription (e.g. the buyer's payment failed): nothing is activated.
    pub fail: bool,
}

/// What subscribing did; the server posts the token to `product.fulfillment_url`.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub product: Product,
    pub agreement: Option<Agreement>,
    pub token: Option<RegistrationToken>,
    pub notifications: Vec<Notification>,
}

impl Metering {
    /// Subscribes a buyer to a SaaS product: creates or re-activates the agreement, mints a
    /// registration token for it, and says which notification to send.
    pub async fn subscribe(&self, req: &Subscribe) -> Result<Subscribed, AdminError> {
        let product = self
            .store()
            .product(&req.product_code)
            .await?
            .ok_or_else(|| {
                AdminError::NotFound(format!("product {} does not exist", req.product_code))
            })?;
        if product.kind != ProductKind::Saas {
            return Err(AdminError::BadRequest(format!(
                "product {} is {}; the subscribe flow (registration token to the fulfillment \
                 URL) is for SaaS products",
                product.code,
                product.kind.as_str()
            )));
        }
        let existing = self
            .agreement_of(&req.product_code, &req.customer_account)
            .await?;
        if req.fail {
            let identifier = match &existing {
                Some(a) => a.customer_identifier.clone(),
                None => self
                    .store()
                    .customer_identifier_of(&req.customer_account)
                    .await?
                    .unwrap_or_else(|| {
                        crate::seed::default_customer_identifier(&req.customer_account)
                    }),
            };
            return Ok(Subscribed {
                notifications: vec![Notification {
                    action: NotificationAction::SubscribeFail,
                    product_code: product.code.clone(),
                    customer_identifier: identifier,
                    customer_account: req.customer_account.clone(),
                    free_trial: req.free_trial,
                }],
                product,
                agreement: existing,
                token: None,
            });
        }
        let spec = match existing {
            Some(a) => AgreementSpec {
                product: a.product_code,
                customer_account: a.customer_account,
                customer_identifier: Some(a.customer_identifier),
                license_arn: Some(a.license_arn),
                agreement_id: Some(a.agreement_id),
                status: AgreementStatus::Active,
                starts: a.starts,
                ends: a.ends.filter(|e| *e > self.clock().now()),
            },
            None => AgreementSpec {
                product: product.code.clone(),
                customer_account: req.customer_account.clone(),
                customer_identifier: None,
                license_arn: None,
                agreement_id: None,
                status: AgreementStatus::Active,
                starts: Some(self.clock().now()),
                ends: None,
            },
        };
        let agreement = Catalog::new(&**self.store(), self.clock().now())
            .put_agreement(&spec)
            .await?;
        let token = self
            .mint_registration_token(&product.code, &req.customer_account)
            .await?;
        Ok(Subscribed {
            notifications: vec![Notification::about(
                &agreement,
                NotificationAction::SubscribeSuccess,
                req.free_trial,
            )],
            product,
            agreement: Some(agreement),
            token: Some(token),
        })
    }

    /// Unsubscribes a buyer: cancels the agreement (metering for it is refused from then on).
    /// AWS announces `unsubscribe-pending` first and `unsubscribe-success` once it is done.
    pub async fn unsubscribe(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> Result<(Agreement, Vec<Notification>), AdminError> {
        let mut agreement = self
            .agreement_of(product_code, customer_account)
            .await?
            .ok_or_else(|| {
                AdminError::NotFound(format!(
                    "account {customer_account} has no agreement for product {product_code}"
                ))
            })?;
        let pending =
            Notification::about(&agreement, NotificationAction::UnsubscribePending, false);
        agreement.status = AgreementStatus::Cancelled;
        self.store().upsert_agreement(&agreement).await?;
        let done = Notification::about(&agreement, NotificationAction::UnsubscribeSuccess, false);
        Ok((agreement, vec![pending, done]))
    }

    /// The buyer's agreement for a product: the active one, else the newest.
    async fn agreement_of(
        &self,
        product_code: &str,
        customer_account: &str,
    ) -> Result<Option<Agreement>, AdminError> {
        let all = self
            .store()
            .list_agreements(&AgreementFilter {
                product_code: Some(product_code.to_string()),
                customer_account: Some(customer_account.to_string()),
                agreement_id: None,
            })
            .await?;
        let now = self.clock().now();
        Ok(all
            .iter()
            .find(|a| a.is_active_at(now))
            .or(all.last())
            .cloned())
    }
}
