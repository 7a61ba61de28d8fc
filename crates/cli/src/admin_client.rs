//! `marketmeter admin ...`: the admin API from the command line, against a running server.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Which running server, and its admin token (shared by `admin` and `report`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the running server.
    #[arg(
        long,
        env = "MARKETMETER_ENDPOINT",
        default_value = "http://127.0.0.1:7171"
    )]
    pub endpoint: String,
    /// Admin bearer token (printed by `marketmeter serve` when it generated one).
    #[arg(long, env = "MARKETMETER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mint a registration token for a buyer's agreement (what AWS posts to your fulfillment URL).
    CreateRegistrationToken {
        #[arg(long)]
        product_code: String,
        #[arg(long)]
        customer_aws_account_id: String,
    },
    /// List stored usage records as JSON.
    UsageRecords {
        #[arg(long)]
        product_code: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Add the next RegisterUsage key version of a container product.
    AddPublicKey { product_code: String },
    /// Retire a key version: it still signs, and RegisterUsage reports PublicKeyRotationTimestamp.
    RetirePublicKey {
        product_code: String,
        #[arg(long)]
        version: i64,
    },
    /// List accounts.
    Accounts,
    /// Create or rename an account (sellers and buyers alike).
    PutAccount {
        /// Account id (digits, like 111122223333).
        id: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List access keys (never their secrets).
    AccessKeys {
        #[arg(long)]
        account: Option<String>,
    },
    /// Create an access key; prints its secret (the only time it is shown).
    CreateAccessKey {
        #[arg(long)]
        account: String,
        /// Temporary credentials (ASIA... with a session token); implied by --resource.
        #[arg(long)]
        temporary: bool,
        /// Makes it a workload credential: the EC2 instance id, ECS task ARN or EKS pod.
        #[arg(long, requires_all = ["platform", "region"])]
        resource: Option<String>,
        /// ec2, ecs, eks or fargate (with --resource).
        #[arg(long, requires = "resource")]
        platform: Option<String>,
        /// The workload's region (with --resource).
        #[arg(long, requires = "resource")]
        region: Option<String>,
    },
    /// Revoke an access key at once.
    RevokeAccessKey { access_key_id: String },
    /// Replace an access key with a new one for the same account and workload; the old one is revoked.
    RotateAccessKey { access_key_id: String },
    /// List products.
    Products {
        #[arg(long)]
        seller: Option<String>,
    },
    /// Create or replace a product.
    PutProduct {
        code: String,
        #[arg(long)]
        seller: String,
        /// saas, ami or container.
        #[arg(long)]
        kind: String,
        /// A dimension as NAME[:UNIT[:PRICE]], e.g. requests:count:0.0001; repeat for several.
        #[arg(long = "dimension", required = true)]
        dimensions: Vec<String>,
        #[arg(long)]
        fulfillment_url: Option<String>,
    },
    /// Delete a product nothing refers to (no agreements, usage, tokens or sessions).
    DeleteProduct { code: String },
    /// List agreements.
    Agreements {
        #[arg(long)]
        product_code: Option<String>,
        #[arg(long)]
        customer_aws_account_id: Option<String>,
    },
    /// Create or replace an agreement (a buyer's subscription); unset values get defaults.
    PutAgreement {
        #[arg(long)]
        product_code: String,
        #[arg(long)]
        customer_aws_account_id: String,
        #[arg(long)]
        agreement_id: Option<String>,
        #[arg(long)]
        customer_identifier: Option<String>,
        #[arg(long)]
        license_arn: Option<String>,
        /// active, cancelled or expired. [default: active]
        #[arg(long)]
        status: Option<String>,
        /// RFC 3339 start, e.g. 2026-01-01T00:00:00Z.
        #[arg(long)]
        starts: Option<String>,
        /// RFC 3339 end (exclusive).
        #[arg(long)]
        ends: Option<String>,
    },
    /// Cancel an agreement: metering for it is refused from now on.
    CancelAgreement {
        agreement_id: String,
        /// The seller, when several sellers use this agreement id.
        #[arg(long)]
        seller: Option<String>,
    },
    /// Expire an agreement.
    ExpireAgreement {
        agreement_id: String,
        #[arg(long)]
        seller: Option<String>,
    },
    /// Re-activate a cancelled or expired agreement.
    ActivateAgreement {
        agreement_id: String,
        #[arg(long)]
        seller: Option<String>,
    },
    /// List customers (buyers with agreements) and their agreements.
    Customers {
        #[arg(long)]
        product_code: Option<String>,
    },
    /// Subscribe a buyer to a SaaS product as AWS Marketplace does: activate the agreement, mint
    /// a registration token, POST it to the fulfillment URL, notify the webhooks.
    Subscribe {
        #[arg(long)]
        product_code: String,
        #[arg(long)]
        customer_aws_account_id: String,
        /// A free-trial offer (adds x-amzn-marketplace-offer-type=free-trial).
        #[arg(long)]
        free_trial: bool,
        /// Simulate a failed subscription: only subscribe-fail is sent.
        #[arg(long)]
        fail: bool,
    },
    /// Unsubscribe a buyer: cancel the agreement, notify unsubscribe-pending and -success.
    Unsubscribe {
        #[arg(long)]
        product_code: String,
        #[arg(long)]
        customer_aws_account_id: String,
    },
    /// The notification delivery log (webhooks).
    Notifications,
    /// Apply a seed file (TOML, as for `serve --seed`) to the running server's catalog.
    ApplyCatalog { file: std::path::PathBuf },
    /// Show a container product's RegisterUsage public keys.
    PublicKeys {
        product_code: String,
        /// Print only the PEM of this key version.
        #[arg(long)]
        pem: Option<i64>,
    },
    /// Show the metering clock; with `--clock manual`, set or advance it.
    Clock {
        #[command(subcommand)]
        action: Option<crate::controls_client::ClockAction>,
    },
    /// Inject faults into the AWS operations (list, add, remove, clear).
    Faults {
        #[command(subcommand)]
        action: Option<crate::controls_client::FaultAction>,
    },
    /// Show AWS request quotas, or turn them on or off.
    Quotas {
        #[command(subcommand)]
        action: Option<crate::controls_client::QuotaAction>,
    },
    /// List the runs of container workloads that called RegisterUsage, with the hours billed
    /// so far.
    Containers {
        #[arg(long)]
        product_code: Option<String>,
        #[arg(long)]
        customer_aws_account_id: Option<String>,
        #[arg(long)]
        resource_id: Option<String>,
        /// running or stopped.
        #[arg(long)]
        state: Option<String>,
    },
    /// Report a container workload stopped: its hourly metering ends at the stop.
    StopContainer {
        #[arg(long)]
        product_code: String,
        /// The ECS task, EKS pod or Fargate task (as in its workload credential).
        #[arg(long)]
        resource_id: String,
        /// RFC 3339 stop time, not before the run's start nor after the service clock's now.
        /// [default: now]
        #[arg(long)]
        at: Option<String>,
    },
    /// Delete all metering state (usage, client tokens, registration tokens, container
    /// sessions) for a fresh test; the catalog stays.
    Reset {
        /// Confirm: this deletes every usage record on the server.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) fn call(
    args: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let url = format!("{}{}", args.server.endpoint.trim_end_matches('/'), path);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!("Bearer {}", args.server.admin_token);
    let resp = match (method, body) {
        ("POST", Some(b)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&b),
        ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(&b),
        ("GET", None) => agent.get(&url).header("Authorization", &auth).call(),
        ("DELETE", None) => agent.delete(&url).header("Authorization", &auth).call(),
        (method, _) => bail!("unsupported method {method}"),
    }
    .with_context(|| format!("could not reach {url}; is `marketmeter serve` running there?"))?;
    let status = resp.status();
    if status.as_u16() == 204 {
        return Ok(json!({}));
    }
    let value: Value = resp
        .into_body()
        .read_json()
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        let msg = value["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        bail!("{status}: {msg}");
    }
    Ok(value)
}

pub fn run(args: AdminArgs) -> Result<()> {
    let out = match &args.command {
        AdminCommand::CreateRegistrationToken {
            product_code,
            customer_aws_account_id,
        } => call(
            &args,
            "POST",
            "/admin/v1/registration-tokens",
            Some(
                json!({"product_code": product_code, "customer_aws_account_id": customer_aws_account_id}),
            ),
        )?,
        AdminCommand::UsageRecords {
            product_code,
            limit,
        } => {
            let mut q = Vec::new();
            if let Some(p) = product_code {
                q.push(format!("product_code={}", urlencode(p)));
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            let path = format!(
                "/admin/v1/usage-records{}{}",
                if q.is_empty() { "" } else { "?" },
                q.join("&")
            );
            call(&args, "GET", &path, None)?
        }
        AdminCommand::AddPublicKey { product_code } => call(
            &args,
            "POST",
            &format!("/admin/v1/products/{}/public-keys", urlencode(product_code)),
            Some(json!({})),
        )?,
        AdminCommand::RetirePublicKey {
            product_code,
            version,
        } => call(
            &args,
            "POST",
            &format!(
                "/admin/v1/products/{}/public-keys/{version}/retire",
                urlencode(product_code)
            ),
            Some(json!({})),
        )?,
        AdminCommand::Accounts => call(&args, "GET", "/admin/v1/accounts", None)?,
        AdminCommand::PutAccount { id, name } => call(
            &args,
            "PUT",
            &format!("/admin/v1/accounts/{}", urlencode(id)),
            Some(json!({ "name": name })),
        )?,
        AdminCommand::AccessKeys { account } => call(
            &args,
            "GET",
            &with_query("/admin/v1/access-keys", &[("account", account)]),
            None,
        )?,
        AdminCommand::CreateAccessKey {
            account,
            temporary,
            resource,
            platform,
            region,
        } => {
            let workload = resource
                .as_ref()
                .map(|r| json!({"resource_id": r, "platform": platform, "region": region}));
            call(
                &args,
                "POST",
                "/admin/v1/access-keys",
                Some(json!({"account": account, "temporary": temporary, "workload": workload})),
            )?
        }
        AdminCommand::RevokeAccessKey { access_key_id } => call(
            &args,
            "DELETE",
            &format!("/admin/v1/access-keys/{}", urlencode(access_key_id)),
            None,
        )?,
        AdminCommand::RotateAccessKey { access_key_id } => call(
            &args,
            "POST",
            &format!("/admin/v1/access-keys/{}/rotate", urlencode(access_key_id)),
            Some(json!({})),
        )?,
        AdminCommand::Products { seller } => call(
            &args,
            "GET",
            &with_query("/admin/v1/products", &[("seller", seller)]),
            None,
        )?,
        AdminCommand::PutProduct {
            code,
            seller,
            kind,
            dimensions,
            fulfillment_url,
        } => {
            let dimensions: Vec<Value> = dimensions.iter().map(|d| dimension_json(d)).collect();
            call(
                &args,
                "PUT",
                &format!("/admin/v1/products/{}", urlencode(code)),
                Some(
                    json!({"seller": seller, "kind": kind, "dimensions": dimensions,
                    "fulfillment_url": fulfillment_url}),
                ),
            )?
        }
        AdminCommand::DeleteProduct { code } => call(
            &args,
            "DELETE",
            &format!("/admin/v1/products/{}", urlencode(code)),
            None,
        )?,
        AdminCommand::Agreements {
            product_code,
            customer_aws_account_id,
        } => call(
            &args,
            "GET",
            &with_query(
                "/admin/v1/agreements",
                &[
                    ("product_code", product_code),
                    ("customer_aws_account_id", customer_aws_account_id),
                ],
            ),
            None,
        )?,
        AdminCommand::PutAgreement {
            product_code,
            customer_aws_account_id,
            agreement_id,
            customer_identifier,
            license_arn,
            status,
            starts,
            ends,
        } => call(
            &args,
            "POST",
            "/admin/v1/agreements",
            Some(json!({
                "product_code": product_code,
                "customer_aws_account_id": customer_aws_account_id,
                "agreement_id": agreement_id,
                "customer_identifier": customer_identifier,
                "license_arn": license_arn,
                "status": status,
                "starts": starts,
                "ends": ends,
            })),
        )?,
        AdminCommand::CancelAgreement {
            agreement_id,
            seller,
        } => agreement_action(&args, agreement_id, "cancel", seller)?,
        AdminCommand::ExpireAgreement {
            agreement_id,
            seller,
        } => agreement_action(&args, agreement_id, "expire", seller)?,
        AdminCommand::ActivateAgreement {
            agreement_id,
            seller,
        } => agreement_action(&args, agreement_id, "activate", seller)?,
        AdminCommand::Customers { product_code } => call(
            &args,
            "GET",
            &with_query("/admin/v1/customers", &[("product_code", product_code)]),
            None,
        )?,
        AdminCommand::Subscribe {
            product_code,
            customer_aws_account_id,
            free_trial,
            fail,
        } => call(
            &args,
            "POST",
            "/admin/v1/subscriptions",
            Some(json!({
                "product_code": product_code,
                "customer_aws_account_id": customer_aws_account_id,
                "offer_type": free_trial.then_some("free-trial"),
                "fail": fail,
            })),
        )?,
        AdminCommand::Unsubscribe {
            product_code,
            customer_aws_account_id,
        } => call(
            &args,
            "POST",
            "/admin/v1/subscriptions/cancel",
            Some(json!({
                "product_code": product_code,
                "customer_aws_account_id": customer_aws_account_id,
            })),
        )?,
        AdminCommand::Notifications => call(&args, "GET", "/admin/v1/notifications", None)?,
        AdminCommand::ApplyCatalog { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let seed = crate::config::seed_as_json(&text)
                .with_context(|| format!("{} is not a valid seed file", file.display()))?;
            call(&args, "POST", "/admin/v1/catalog", Some(seed))?
        }
        AdminCommand::PublicKeys { product_code, pem } => {
            let v = call(
                &args,
                "GET",
                &format!("/admin/v1/products/{}/public-keys", urlencode(product_code)),
                None,
            )?;
            if let Some(version) = pem {
                let key = v["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|k| k["version"].as_i64() == Some(*version));
                match key.and_then(|k| k["pem"].as_str()) {
                    Some(p) => {
                        print!("{p}");
                        return Ok(());
                    }
                    None => bail!("product {product_code} has no key version {version}"),
                }
            }
            v
        }
        AdminCommand::Clock { action } => crate::controls_client::clock(&args, action.as_ref())?,
        AdminCommand::Faults { action } => crate::controls_client::faults(&args, action.as_ref())?,
        AdminCommand::Quotas { action } => crate::controls_client::quotas(&args, action.as_ref())?,
        AdminCommand::Containers {
            product_code,
            customer_aws_account_id,
            resource_id,
            state,
        } => call(
            &args,
            "GET",
            &with_query(
                "/admin/v1/container-sessions",
                &[
                    ("product_code", product_code),
                    ("customer_aws_account_id", customer_aws_account_id),
                    ("resource_id", resource_id),
                    ("state", state),
                ],
            ),
            None,
        )?,
        AdminCommand::StopContainer {
            product_code,
            resource_id,
            at,
        } => call(
            &args,
            "POST",
            "/admin/v1/container-sessions/stop",
            Some(json!({"product_code": product_code, "resource_id": resource_id, "at": at})),
        )?,
        AdminCommand::Reset { yes } => crate::controls_client::reset(&args, *yes)?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn agreement_action(
    args: &AdminArgs,
    agreement_id: &str,
    action: &str,
    seller: &Option<String>,
) -> Result<Value> {
    let path = format!("/admin/v1/agreements/{}/{action}", urlencode(agreement_id));
    call(
        args,
        "POST",
        &with_query(&path, &[("seller", seller)]),
        Some(json!({})),
    )
}

/// `NAME[:UNIT[:PRICE]]` as the API's dimension object.
fn dimension_json(spec: &str) -> Value {
    let mut parts = spec.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let unit = parts.next().filter(|u| !u.is_empty());
    let price = parts.next().filter(|p| !p.is_empty());
    json!({"name": name, "unit": unit, "price": price})
}

fn with_query(path: &str, params: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
