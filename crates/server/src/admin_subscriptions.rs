//! Admin API for the SaaS subscribe flow: subscribe a buyer (agreement, registration token, the
//! form POST to the fulfillment URL, notifications), unsubscribe, and the notification delivery
//! log.

use crate::admin::{parse_json, AdminFailure};
use crate::outbound::post_registration_token;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use marketmeter_domain::subscriptions::{Notification, Subscribe};
use marketmeter_domain::windows::rfc3339;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

type AdminResult = Result<Response, AdminFailure>;

/// The subscription routes (behind the admin token, like the catalog's).
pub fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/subscriptions", post(subscribe))
        .route("/admin/v1/subscriptions/cancel", post(unsubscribe))
        .route("/admin/v1/notifications", get(deliveries))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::admin_catalog::require_token,
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeBody {
    product_code: String,
    customer_aws_account_id: String,
    /// `free-trial` for a free-trial offer.
    offer_type: Option<String>,
    /// Simulate a failed subscription (e.g. payment failed): `subscribe-fail`, nothing activated.
    #[serde(default)]
    fail: bool,
}

async fn subscribe(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let b: SubscribeBody = parse_json(&body)?;
    let free_trial = match b.offer_type.as_deref() {
        None => false,
        Some("free-trial") => true,
        Some(other) => {
            return Err(crate::admin::bad_request(format!(
                "offer_type {other:?} is not known; use \"free-trial\" or leave it out"
            )))
        }
    };
    let req = Subscribe {
        product_code: b.product_code,
        customer_account: b.customer_aws_account_id,
        free_trial,
        fail: b.fail,
    };
    let done = state.metering.subscribe(&req).await?;
    let fulfillment = match (&done.token, &done.product.fulfillment_url) {
        (Some(token), Some(url)) => {
            let (url, token) = (url.clone(), token.token.clone());
            let answer = tokio::task::spawn_blocking(move || {
                post_registration_token(&url, &token, free_trial)
            })
            .await
            .map_err(|e| crate::admin::bad_request(format!("fulfillment post failed: {e}")))?;
            Some(answer)
        }
        _ => None,
    };
    let notifications = publish(&state, &done.notifications);
    let status = if done.token.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let agreement = done
        .agreement
        .as_ref()
        .map(crate::admin_catalog::agreement_json);
    Ok((
        status,
        Json(json!({
            "subscribed": done.token.is_some(),
            "agreement": agreement,
            "registration_token": done.token.as_ref().map(|t| &t.token),
            "expires_at": done.token.as_ref().map(|t| rfc3339(t.expires_at)),
            "fulfillment": fulfillment,
            "notifications": notifications,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeBody {
    product_code: String,
    customer_aws_account_id: String,
}

async fn unsubscribe(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let b: UnsubscribeBody = parse_json(&body)?;
    let (agreement, notes) = state
        .metering
        .unsubscribe(&b.product_code, &b.customer_aws_account_id)
        .await?;
    let notifications = publish(&state, &notes);
    Ok(Json(json!({
        "agreement": crate::admin_catalog::agreement_json(&agreement),
        "notifications": notifications,
    }))
    .into_response())
}

/// Sends notifications to the webhooks; returns their message ids.
pub(crate) fn publish(state: &AppState, notes: &[Notification]) -> Vec<String> {
    notes
        .iter()
        .filter_map(|n| state.notifier.publish(n))
        .collect()
}

async fn deliveries(State(state): State<Arc<AppState>>) -> AdminResult {
    Ok(Json(json!({ "deliveries": state.notifier.deliveries() })).into_response())
}
