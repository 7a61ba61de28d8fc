//! Admin API for the seller catalog: accounts, access keys, products, agreements, customers, and
//! whole seed documents. Changes take effect at once on the metering API. Secrets appear only in
//! the answer that creates them.

use crate::admin::{authorize, bad_request, parse_json, AdminFailure};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use marketmeter_domain::catalog::{AgreementSpec, Catalog, NewAccessKey};
use marketmeter_domain::model::*;
use marketmeter_domain::seed::Seed;
use marketmeter_domain::store::AgreementFilter;
use marketmeter_domain::subscriptions::{Notification, NotificationAction};
use marketmeter_domain::windows::rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

type AdminResult = Result<Response, AdminFailure>;

/// The catalog routes, all behind the admin bearer token.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/accounts", get(list_accounts))
        .route("/admin/v1/accounts/{id}", get(get_account).put(put_account))
        .route(
            "/admin/v1/access-keys",
            get(list_access_keys).post(create_access_key),
        )
        .route(
            "/admin/v1/access-keys/{id}",
            axum::routing::delete(revoke_access_key),
        )
        .route("/admin/v1/access-keys/{id}/rotate", post(rotate_access_key))
        .route("/admin/v1/products", get(list_products))
        .route(
            "/admin/v1/products/{code}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route(
            "/admin/v1/agreements",
            get(list_agreements).post(put_agreement),
        )
        .route("/admin/v1/agreements/{id}", get(get_agreement))
        .route("/admin/v1/agreements/{id}/{action}", post(agreement_action))
        .route("/admin/v1/customers", get(list_customers))
        .route("/admin/v1/catalog", post(apply_catalog))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    match authorize(&state, &headers) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn catalog(state: &AppState) -> Catalog<'_> {
    Catalog::new(&**state.metering.store(), state.metering.clock().now())
}

fn ok(v: Value) -> AdminResult {
    Ok(Json(v).into_response())
}

fn created(v: Value) -> AdminResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

// ------------------------------------------------------------------ JSON shapes

fn account_json(a: &Account) -> Value {
    json!({"id": a.id, "name": a.name})
}

fn workload_json(w: &Option<Workload>) -> Value {
    match w {
        Some(w) => {
            json!({"resource_id": w.resource_id, "platform": w.platform.as_str(), "region": w.region})
        }
        None => Value::Null,
    }
}

/// A key as listed: never its secret or session token.
fn access_key_json(k: &AccessKey) -> Value {
    json!({
        "access_key_id": k.access_key_id,
        "account": k.account_id,
        "temporary": k.session_token.is_some(),
        "workload": workload_json(&k.workload),
    })
}

/// A key as created: the one answer that carries its secrets.
fn new_key_json(k: &AccessKey) -> Value {
    let mut v = access_key_json(k);
    v["secret_access_key"] = json!(k.secret_access_key);
    v["session_token"] = json!(k.session_token);
    v
}

fn product_json(p: &Product) -> Value {
    json!({
        "code": p.code,
        "seller": p.seller_account,
        "kind": p.kind.as_str(),
        "fulfillment_url": p.fulfillment_url,
        "dimensions": p.dimensions,
    })
}

pub(crate) fn agreement_json(a: &Agreement) -> Value {
    json!({
        "agreement_id": a.agreement_id,
        "product_code": a.product_code,
        "seller": a.seller_account,
        "customer_aws_account_id": a.customer_account,
        "customer_identifier": a.customer_identifier,
        "license_arn": a.license_arn,
        "status": a.status.as_str(),
        "starts": a.starts.map(rfc3339),
        "ends": a.ends.map(rfc3339),
    })
}

// ------------------------------------------------------------------ accounts

async fn list_accounts(State(state): State<Arc<AppState>>) -> AdminResult {
    let accounts = state.metering.store().list_accounts().await?;
    ok(json!({"accounts": accounts.iter().map(account_json).collect::<Vec<_>>()}))
}

async fn get_account(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> AdminResult {
    match state.metering.store().account(&id).await? {
        Some(a) => ok(account_json(&a)),
        None => Err(not_found(format!("account {id} does not exist"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    name: Option<String>,
}

async fn put_account(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let body: AccountBody = if body.is_empty() {
        AccountBody { name: None }
    } else {
        parse_json(&body)?
    };
    let account = Account {
        id,
        name: body.name,
    };
    catalog(&state).put_account(&account).await?;
    ok(account_json(&account))
}

fn not_found(m: String) -> AdminFailure {
    marketmeter_domain::AdminError::NotFound(m).into()
}

// ------------------------------------------------------------------ access keys

#[derive(Deserialize)]
struct AccountQuery {
    account: Option<String>,
}

async fn list_access_keys(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AccountQuery>,
) -> AdminResult {
    let keys = state
        .metering
        .store()
        .list_access_keys(q.account.as_deref())
        .await?;
    ok(json!({"access_keys": keys.iter().map(access_key_json).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    account: String,
    workload: Option<WorkloadBody>,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadBody {
    resource_id: String,
    platform: Platform,
    region: String,
}

async fn create_access_key(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let body: NewKeyBody = parse_json(&body)?;
    let req = NewAccessKey {
        account: body.account,
        workload: body.workload.map(|w| Workload {
            resource_id: w.resource_id,
            platform: w.platform,
            region: w.region,
        }),
        session_token: body.temporary,
    };
    let key = catalog(&state).create_access_key(&req).await?;
    created(new_key_json(&key))
}

async fn revoke_access_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult {
    catalog(&state).revoke_access_key(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_access_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AdminResult {
    let key = catalog(&state).rotate_access_key(&id).await?;
    created(json!({"revoked": id, "access_key": new_key_json(&key)}))
}

// ------------------------------------------------------------------ products

#[derive(Deserialize)]
struct SellerQuery {
    seller: Option<String>,
}

async fn list_products(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SellerQuery>,
) -> AdminResult {
    let products = state
        .metering
        .store()
        .list_products(q.seller.as_deref())
        .await?;
    ok(json!({"products": products.iter().map(product_json).collect::<Vec<_>>()}))
}

async fn get_product(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> AdminResult {
    match state.metering.store().product(&code).await? {
        Some(p) => ok(product_json(&p)),
        None => Err(not_found(format!("product {code} does not exist"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    seller: String,
    kind: ProductKind,
    fulfillment_url: Option<String>,
    dimensions: Vec<Dimension>,
}

async fn put_product(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    body: Bytes,
) -> AdminResult {
    let body: ProductBody = parse_json(&body)?;
    let product = Product {
        code,
        seller_account: body.seller,
        kind: body.kind,
        fulfillment_url: body.fulfillment_url,
        dimensions: body.dimensions,
    };
    let new_keys = catalog(&state).put_product(&product).await?;
    let mut v = product_json(&product);
    v["new_signing_keys"] = json!(new_keys);
    ok(v)
}

async fn delete_product(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> AdminResult {
    catalog(&state).delete_product(&code).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------------ agreements and customers

#[derive(Deserialize)]
struct AgreementQuery {
    product_code: Option<String>,
    customer_aws_account_id: Option<String>,
}

async fn list_agreements(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AgreementQuery>,
) -> AdminResult {
    let filter = AgreementFilter {
        product_code: q.product_code,
        customer_account: q.customer_aws_account_id,
        agreement_id: None,
    };
    let agreements = state.metering.store().list_agreements(&filter).await?;
    ok(json!({"agreements": agreements.iter().map(agreement_json).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgreementBody {
    product_code: String,
    customer_aws_account_id: String,
    customer_identifier: Option<String>,
    license_arn: Option<String>,
    agreement_id: Option<String>,
    status: Option<AgreementStatus>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    starts: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    ends: Option<OffsetDateTime>,
}

async fn put_agreement(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let b: AgreementBody = parse_json(&body)?;
    let spec = AgreementSpec {
        product: b.product_code,
        customer_account: b.customer_aws_account_id,
        customer_identifier: b.customer_identifier,
        license_arn: b.license_arn,
        agreement_id: b.agreement_id,
        status: b.status.unwrap_or(AgreementStatus::Active),
        starts: b.starts,
        ends: b.ends,
    };
    let agreement = catalog(&state).put_agreement(&spec).await?;
    ok(agreement_json(&agreement))
}

async fn get_agreement(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<SellerQuery>,
) -> AdminResult {
    let a = catalog(&state).agreement(&id, q.seller.as_deref()).await?;
    ok(agreement_json(&a))
}

async fn agreement_action(
    State(state): State<Arc<AppState>>,
    Path((id, action)): Path<(String, String)>,
    Query(q): Query<SellerQuery>,
) -> AdminResult {
    let status = match action.as_str() {
        "cancel" => AgreementStatus::Cancelled,
        "expire" => AgreementStatus::Expired,
        "activate" => AgreementStatus::Active,
        other => {
            return Err(not_found(format!(
                "no action {other:?} on agreements; use cancel, expire or activate"
            )))
        }
    };
    let (a, changed) = catalog(&state)
        .set_agreement_status(&id, q.seller.as_deref(), status)
        .await?;
    if changed {
        let note = Notification::about(&a, NotificationAction::EntitlementUpdated, false);
        crate::admin_subscriptions::publish(&state, &[note]);
    }
    ok(agreement_json(&a))
}

#[derive(Deserialize)]
struct CustomerQuery {
    product_code: Option<String>,
}

/// Buyers with at least one agreement (of a product, when given), with their agreements.
async fn list_customers(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CustomerQuery>,
) -> AdminResult {
    let filter = AgreementFilter {
        product_code: q.product_code,
        ..AgreementFilter::default()
    };
    let mut customers: BTreeMap<String, (String, Vec<Value>)> = BTreeMap::new();
    for a in state.metering.store().list_agreements(&filter).await? {
        let entry = customers
            .entry(a.customer_account.clone())
            .or_insert_with(|| (a.customer_identifier.clone(), Vec::new()));
        entry.1.push(json!({
            "agreement_id": a.agreement_id,
            "product_code": a.product_code,
            "status": a.status.as_str(),
        }));
    }
    let list: Vec<Value> = customers
        .into_iter()
        .map(|(account, (identifier, agreements))| {
            json!({
                "customer_aws_account_id": account,
                "customer_identifier": identifier,
                "agreements": agreements,
            })
        })
        .collect();
    ok(json!({ "customers": list }))
}

// ------------------------------------------------------------------ whole catalogs

/// A seed document (the TOML seed's JSON form), applied idempotently.
async fn apply_catalog(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let seed: Seed = parse_json(&body)?;
    let report = seed
        .apply(&**state.metering.store(), state.metering.clock().now())
        .await
        .map_err(|e| match e {
            marketmeter_domain::seed::SeedError::Invalid(m) => bad_request(m),
            marketmeter_domain::seed::SeedError::Store(e) => e.into(),
        })?;
    ok(json!({
        "accounts": report.accounts,
        "keys": report.keys,
        "products": report.products,
        "agreements": report.agreements,
        "new_signing_keys": report.new_signing_keys,
    }))
}
