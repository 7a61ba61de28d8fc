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
        AdminCommand::Reset { yes } => crate::controls_client::reset(&args, *yes)?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
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
