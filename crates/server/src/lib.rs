//! HTTP front of marketmeter: the AWS endpoint (`POST /` + `X-Amz-Target`), the admin API and
//! health checks, with request ids on every response and panics contained per request.

pub mod admin;
pub mod admin_audit;
pub mod admin_catalog;
pub mod admin_containers;
pub mod admin_subscriptions;
pub mod audit_trail;
pub mod auth;
pub mod aws;
pub mod controls;
pub mod faults;
pub mod limits;
pub mod metrics;
pub mod notify;
mod outbound;
pub mod quotas;
pub mod reports;
pub mod response;

pub use auth::AuthMode;
pub use limits::Limits;

use axum::routing::{get, post};
use axum::Router;
use http::HeaderValue;
use marketmeter_domain::{ManualClock, Metering};
use marketmeter_sigv4::{SigningKeyCache, VerifyConfig};
use marketmeter_wire::{ApiError, ErrorCode};
use std::sync::Arc;

pub struct AppState {
    pub metering: Arc<Metering>,
    pub auth: AuthMode,
    pub admin_token: String,
    pub verify: VerifyConfig,
    pub signing_keys: SigningKeyCache,
    /// Seller notifications (webhooks); disabled unless set with [`AppState::with_notifier`].
    pub notifier: notify::Notifier,
    pub limits: Limits,
    pub metrics: Arc<metrics::Metrics>,
    pub faults: faults::Faults,
    pub quotas: quotas::Quotas,
    /// Set when the server runs with `--clock manual` (the same clock the metering rules read).
    pub manual_clock: Option<Arc<ManualClock>>,
}

impl AppState {
    pub fn new(
        metering: Arc<Metering>,
        auth: AuthMode,
        admin_token: String,
        max_skew: time::Duration,
    ) -> Self {
        Self {
            metering,
            auth,
            admin_token,
            verify: VerifyConfig {
                service: "aws-marketplace".to_string(),
                max_skew,
            },
            signing_keys: SigningKeyCache::default(),
            notifier: notify::Notifier::disabled(),
            limits: Limits::default(),
            metrics: Arc::default(),
            faults: faults::Faults::default(),
            quotas: quotas::Quotas::new(false),
            manual_clock: None,
        }
    }

    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Starts with the AWS request quotas on.
    pub fn with_aws_quotas(mut self, on: bool) -> Self {
        self.quotas = quotas::Quotas::new(on);
        self
    }

    /// Lets the admin API read, set and advance `clock`, which must be the metering clock.
    pub fn with_manual_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.manual_clock = Some(clock);
        self
    }

    /// Uses `metrics` (shared with the store's commit observer) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            post(aws::handle).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                metrics::observe,
            )),
        )
        .route(
            "/admin/v1/registration-tokens",
            post(admin::create_registration_token),
        )
        .route("/admin/v1/usage-records", get(admin::list_usage_records))
        .route(
            "/admin/v1/products/{code}/public-keys",
            get(admin::public_keys).post(admin::add_public_key),
        )
        .route(
            "/admin/v1/products/{code}/public-keys/{version}/retire",
            post(admin::retire_public_key),
        )
        .merge(admin_catalog::routes(state.clone()))
        .merge(admin_subscriptions::routes(state.clone()))
        .merge(admin_containers::routes(state.clone()))
        .route("/admin/openapi.json", get(openapi))
        .merge(controls::routes())
        .route("/admin/v1/reports/usage", get(reports::usage_report))
        .route("/admin/v1/audit", get(admin_audit::list))
        .route("/admin/v1/audit/export", get(admin_audit::export))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics::scrape))
        .fallback(aws::fallback)
        .with_state(state)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn(request_id))
}

/// The admin API's OpenAPI 3.1 document (public: it describes, it holds nothing secret).
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

async fn ready(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> (http::StatusCode, &'static str) {
    match state.metering.store().ping().await {
        Ok(()) => (http::StatusCode::OK, "ready"),
        Err(_) => (http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("handler panicked; answered InternalServiceErrorException");
    response::error_response(&ApiError::new(
        ErrorCode::InternalServiceError,
        "internal error; retry the request",
    ))
}

/// Every response carries `x-amzn-RequestId` (botocore and the Rust SDK surface it).
async fn request_id(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    // Handlers read it too: the audit trail records the id the client is answered with.
    let mut req = req;
    req.extensions_mut()
        .insert(audit_trail::RequestId(id.clone()));
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    limits::serve(listener, router(state), limits, shutdown).await
}
