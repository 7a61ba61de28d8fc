//! `marketmeter serve`: open the store, load seeds, print what a newcomer needs, serve.

use crate::config::{read_seed, AuthArg, ClockArg, LogFormat, ServeArgs, ServeConfig};
use anyhow::{Context, Result};
use marketmeter_domain::store::CommitObserverRef;
use marketmeter_domain::{Clock, ManualClock, Metering, SystemClock};
use marketmeter_server::{AppState, AuthMode};
use rand::RngCore;
use std::sync::Arc;

pub fn run(args: ServeArgs) -> Result<()> {
    let cfg = args.resolve()?;
    init_logging(cfg.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(cfg))
}

/// Targets whose debug output carries secrets (tokio-postgres logs every query's parameters,
/// access keys' secrets among them); they never log below info, whatever MARKETMETER_LOG says.
const SECRET_BEARING_TARGETS: &[&str] = &["tokio_postgres=info"];

fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("MARKETMETER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in SECRET_BEARING_TARGETS {
        filter = filter.add_directive(directive.parse().expect("valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(cfg: ServeConfig) -> Result<()> {
    let metrics = Arc::new(marketmeter_server::metrics::Metrics::new());
    let mut db_options = cfg.db_options.clone();
    let observer = CommitObserverRef(metrics.clone());
    db_options.sqlite.commit_observer = Some(observer.clone());
    db_options.postgres.commit_observer = Some(observer);
    let opened = crate::migrate::open(&cfg.db, &db_options).await?;
    let store = opened.store;
    let manual_clock = (cfg.clock == ClockArg::Manual)
        .then(|| Arc::new(ManualClock::new(time::OffsetDateTime::now_utc())));
    let clock: Arc<dyn Clock> = match &manual_clock {
        Some(m) => m.clone(),
        None => Arc::new(SystemClock),
    };
    let now = clock.now();

    let mut seeds = Vec::new();
    if cfg.demo {
        seeds.push((
            "built-in demo".to_string(),
            crate::config::parse_seed(include_str!("demo.toml"))?,
        ));
    }
    for path in &cfg.seeds {
        seeds.push((path.display().to_string(), read_seed(path)?));
    }
    for (name, seed) in &seeds {
        let report = seed
            .apply(&*store, now)
            .await
            .with_context(|| format!("loading seed {name}"))?;
        tracing::info!(seed = %name, accounts = report.accounts, keys = report.keys, products = report.products,
            agreements = report.agreements, new_signing_keys = report.new_signing_keys, "seed loaded");
    }

    let metering = Arc::new(Metering::new(store, clock, cfg.metering.clone()));
    let (admin_token, generated) = match cfg.admin_token.clone() {
        Some(t) => (t, false),
        None => (random_token(), true),
    };
    let auth = match cfg.auth {
        AuthArg::Sigv4 => AuthMode::SigV4,
        AuthArg::Open => AuthMode::Open,
    };
    let notifier = marketmeter_server::notify::Notifier::new(
        cfg.webhooks.clone(),
        cfg.webhook_attempts,
        std::time::Duration::from_millis(500),
    );
    let mut state = AppState::new(
        metering.clone(),
        auth,
        admin_token.clone(),
        cfg.signature_skew,
    )
    .with_notifier(notifier)
    .with_limits(cfg.limits)
    .with_metrics(metrics)
    .with_aws_quotas(cfg.aws_quotas);
    if let Some(m) = manual_clock {
        state = state.with_manual_clock(m);
    }
    let state = Arc::new(state);

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| {
            format!(
                "binding {}; is another server using it? choose one with --listen",
                cfg.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");

    if auth == AuthMode::Open {
        let banner = "WARNING: --auth open: SigV4 signatures are NOT verified; anyone who can reach this port can meter, resolve and register. Use only for local experiments.";
        tracing::warn!("{banner}");
        eprintln!("\n!!! {banner}\n");
    }
    println!("marketmeter listening on {url}");
    println!("database: {}", cfg.db);
    if cfg.clock == ClockArg::Manual {
        println!(
            "clock: manual, now {} (move it with `marketmeter admin clock`)",
            marketmeter_domain::windows::rfc3339(metering.clock().now())
        );
    }
    if cfg.aws_quotas {
        println!("AWS request quotas: on");
    }
    if generated {
        println!("admin token (generated; set --admin-token or MARKETMETER_ADMIN_TOKEN to fix it): {admin_token}");
    }
    if cfg.demo {
        print_demo(&metering, &url, &admin_token).await?;
    }
    use std::io::Write;
    std::io::stdout().flush().ok();

    marketmeter_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down; finishing in-flight requests");
}

/// Ready-to-paste commands, one per operation, that succeed as printed against the demo world.
async fn print_demo(metering: &Metering, url: &str, admin_token: &str) -> Result<()> {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "marketmeter".into());
    let token = metering
        .mint_registration_token("demo-saas", "444455556666")
        .await
        .map_err(|e| anyhow::anyhow!("minting the demo registration token: {e}"))?;
    let seller = "AWS_ACCESS_KEY_ID=AKIADEMOSELLER000001 AWS_SECRET_ACCESS_KEY=demo-seller-secret";
    let ec2 = "AWS_ACCESS_KEY_ID=AKIADEMOBUYEREC20001 AWS_SECRET_ACCESS_KEY=demo-buyer-ec2-secret";
    let ecs = "AWS_ACCESS_KEY_ID=AKIADEMOBUYERECS0001 AWS_SECRET_ACCESS_KEY=demo-buyer-ecs-secret";
    println!(
        r#"
== marketmeter demo ==
Seller 111122223333 (Acme) sells demo-saas, demo-ami and demo-container; buyer 444455556666 (Globex)
subscribes to all three and runs EC2 instance i-0demo0000000000001 and an ECS task in us-east-1.

# 1. Point the AWS CLI / SDKs at this server:
export AWS_ENDPOINT_URL_MARKETPLACE_METERING={url}
export AWS_DEFAULT_REGION=us-east-1

# 2. ResolveCustomer (seller; the token was minted for Globex's demo-saas agreement):
{seller} aws meteringmarketplace resolve-customer --registration-token {token}

# 3. BatchMeterUsage (seller; concurrent-agreement identity):
{seller} aws meteringmarketplace batch-meter-usage --usage-records "Timestamp=$(date +%s),CustomerAWSAccountId=444455556666,LicenseArn=arn:aws:license-manager::111122223333:license/l-demo0saas0globex,Dimension=requests,Quantity=42"

# 4. MeterUsage (buyer's EC2 instance, AMI product):
{ec2} aws meteringmarketplace meter-usage --product-code demo-ami --timestamp $(date +%s) --usage-dimension hosts --usage-quantity 1

# 5. RegisterUsage (buyer's ECS task, container product):
{ecs} aws meteringmarketplace register-usage --product-code demo-container --public-key-version 1 --nonce demo-nonce

# Admin API (see what was metered):
{exe} admin --endpoint {url} --admin-token {admin_token} usage-records --product-code demo-saas
"#,
        token = token.token
    );
    Ok(())
}
