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
mod streamed;

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
    let routes = Router::new()
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
        .fallback(aws::fallback);
    contained(routes.with_state(state))
}

/// The layers around every route: a panic becomes a JSON `InternalServiceErrorException`
/// (logged inside the request's span), and every response carries a request id.
fn contained(routes: Router) -> Router {
    routes
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

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    // The message says where it went wrong; the client gets nothing of it.
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(
        panic = message,
        "handler panicked; answered InternalServiceErrorException"
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Log output written while a test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn post_panicking(agent: &ureq::Agent, url: &str) -> (u16, String, String, String) {
        let mut resp = agent
            .post(url)
            .header("X-Amz-Target", "AWSMPMeteringService.MeterUsage")
            .send("{}")
            .unwrap();
        let header = |name: &str| {
            let v = resp.headers().get(name).map(|v| v.to_str().unwrap());
            v.unwrap_or_default().to_string()
        };
        let (content_type, request_id) = (header("content-type"), header("x-amzn-RequestId"));
        let status = resp.status().as_u16();
        (
            status,
            content_type,
            request_id,
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    // A current-thread runtime: the server's tasks run on this thread, under this subscriber.
    #[tokio::test]
    async fn a_panic_in_a_handler_is_a_logged_json_fault_and_serving_goes_on() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        async fn boom() -> &'static str {
            panic!("injected handler fault")
        }
        let routes = Router::new()
            .route("/", post(boom))
            .route("/health/live", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(limits::serve(
            listener,
            contained(routes),
            Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));

        let (first, live, second) = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(std::time::Duration::from_secs(10)))
                .build()
                .into();
            let first = post_panicking(&agent, &url);
            let live = agent
                .get(format!("{url}/health/live"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
            (first, live, post_panicking(&agent, &url))
        })
        .await
        .unwrap();

        for (status, content_type, request_id, body) in [&first, &second] {
            assert_eq!(*status, 500, "{body}");
            assert_eq!(content_type, "application/x-amz-json-1.1");
            let doc: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(doc["__type"], "InternalServiceErrorException", "{doc}");
            assert!(
                !body.contains("injected"),
                "the panic message reached the client: {body}"
            );
            assert!(!request_id.is_empty(), "no request id");
        }
        assert_eq!(live, "ok", "the server stopped serving after a panic");
        let _ = stop.send(());
        server.await.unwrap().unwrap();

        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        for (_, _, request_id, _) in [&first, &second] {
            let line = logs
                .lines()
                .find(|l| l.contains(request_id.as_str()))
                .unwrap_or_else(|| panic!("no log line for request {request_id}:\n{logs}"));
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("handler panicked"), "{line}");
            assert!(line.contains("injected handler fault"), "{line}");
        }
    }
}
