//! Seller notifications, delivered the way Amazon SNS delivers to an HTTP(S) subscriber: a JSON
//! envelope (`Type`, `MessageId`, `TopicArn`, `Message`, `Timestamp`) POSTed to every configured
//! webhook URL, retried with exponential back-off, every attempt recorded in a delivery log the
//! admin API shows. Deliveries run in the background (the admin action that raised them does not
//! wait), one worker per URL, so each URL receives messages in the order they were raised
//! (`unsubscribe-pending` before `unsubscribe-success`). Messages are not signed (there is no SNS
//! certificate to verify them against).

use marketmeter_domain::subscriptions::Notification;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// The AWS account that publishes AWS Marketplace's SNS topics.
const MARKETPLACE_ACCOUNT: &str = "287250355862";
/// Deliveries the log keeps (oldest dropped first).
const LOG_CAPACITY: usize = 1000;

#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each webhook URL and the queue of its delivery worker.
    urls: Vec<(String, tokio::sync::mpsc::UnboundedSender<Message>)>,
    attempts: u32,
    first_backoff: Duration,
    log: Mutex<VecDeque<Delivery>>,
}

/// One message to one URL, as the delivery log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub message_id: String,
    pub url: String,
    pub topic_arn: String,
    pub action: String,
    pub product_code: String,
    pub customer_identifier: String,
    /// `pending`, `delivered` or `failed` (after the last attempt).
    pub status: &'static str,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

impl Notifier {
    /// Delivers to `urls`, trying each message up to `attempts` times, waiting `first_backoff`
    /// after the first failure and twice as long after each further one. With URLs, call it
    /// inside a Tokio runtime (it starts the delivery workers).
    pub fn new(urls: Vec<String>, attempts: u32, first_backoff: Duration) -> Self {
        let mut queues = Vec::new();
        let mut receivers = Vec::new();
        for url in urls {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            queues.push((url, tx));
            receivers.push(rx);
        }
        let inner = Arc::new(Inner {
            urls: queues,
            attempts: attempts.max(1),
            first_backoff,
            log: Mutex::new(VecDeque::new()),
        });
        for mut rx in receivers {
            // The worker holds a weak handle: it ends when the notifier is dropped.
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    let Some(inner) = weak.upgrade() else { break };
                    deliver(&inner, m).await;
                }
            });
        }
        Self { inner }
    }

    /// No webhooks: notifications are dropped (and not logged).
    pub fn disabled() -> Self {
        Self::new(Vec::new(), 1, Duration::ZERO)
    }

    /// Queues `n` for every webhook; returns the message id (one per notification, shared by
    /// its deliveries, as SNS does), or None when no webhook is configured.
    pub fn publish(&self, n: &Notification) -> Option<String> {
        if self.inner.urls.is_empty() {
            return None;
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let now = OffsetDateTime::now_utc();
        let topic = topic_arn(n);
        let body = envelope(&message_id, &topic, n, now);
        for (url, queue) in &self.inner.urls {
            let delivery = Delivery {
                message_id: message_id.clone(),
                url: url.clone(),
                topic_arn: topic.clone(),
                action: n.action.as_str().to_string(),
                product_code: n.product_code.clone(),
                customer_identifier: n.customer_identifier.clone(),
                status: "pending",
                attempts: 0,
                last_status_code: None,
                last_error: None,
                created_at: now,
                delivered_at: None,
            };
            self.record(delivery);
            let message = Message {
                url: url.clone(),
                body: body.clone(),
                id: message_id.clone(),
                topic: topic.clone(),
            };
            if queue.send(message).is_err() {
                tracing::error!(url = %loggable(url), "notification worker stopped");
            }
        }
        Some(message_id)
    }

    /// The delivery log, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner
            .log
            .lock()
            .expect("log")
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, d: Delivery) {
        let mut log = self.inner.log.lock().expect("log");
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(d);
    }
}

fn topic_arn(n: &Notification) -> String {
    let topic = if n.action.is_entitlement() {
        "aws-mp-entitlement-notification"
    } else {
        "aws-mp-subscription-notification"
    };
    format!(
        "arn:aws:sns:us-east-1:{MARKETPLACE_ACCOUNT}:{topic}-{}",
        n.product_code
    )
}

/// The SNS envelope; `Message` is itself a JSON document, as a string.
fn envelope(message_id: &str, topic: &str, n: &Notification, now: OffsetDateTime) -> String {
    let message = if n.action.is_entitlement() {
        serde_json::json!({
            "action": n.action.as_str(),
            "customer-identifier": n.customer_identifier,
            "product-code": n.product_code,
        })
    } else {
        serde_json::json!({
            "action": n.action.as_str(),
            "customer-identifier": n.customer_identifier,
            "product-code": n.product_code,
            "isFreeTrialTermPresent": if n.free_trial { "true" } else { "false" },
        })
    };
    serde_json::json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message.to_string(),
        "Timestamp": marketmeter_domain::windows::rfc3339(now),
    })
    .to_string()
}

/// One message on its way to one URL.
#[derive(Clone)]
struct Message {
    url: String,
    body: String,
    id: String,
    topic: String,
}

async fn deliver(inner: &Inner, m: Message) {
    let (url, message_id) = (m.url.clone(), m.id.clone());
    let mut backoff = inner.first_backoff;
    for attempt in 1..=inner.attempts {
        let msg = m.clone();
        let outcome = tokio::task::spawn_blocking(move || post(&msg))
            .await
            .unwrap_or_else(|e| Err(format!("delivery task failed: {e}")));
        let last = attempt == inner.attempts;
        let delivered = matches!(outcome, Ok(code) if (200..300).contains(&code));
        {
            let mut log = inner.log.lock().expect("log");
            if let Some(d) = log
                .iter_mut()
                .rev()
                .find(|d| d.message_id == message_id && d.url == url)
            {
                d.attempts = attempt;
                match &outcome {
                    Ok(code) => {
                        d.last_status_code = Some(*code);
                        d.last_error = None;
                    }
                    Err(e) => d.last_error = Some(e.clone()),
                }
                if delivered {
                    d.status = "delivered";
                    d.delivered_at = Some(OffsetDateTime::now_utc());
                } else if last {
                    d.status = "failed";
                }
            }
        }
        if delivered {
            return;
        }
        tracing::warn!(url = %loggable(&url), attempt, outcome = ?outcome, "notification delivery failed");
        if !last {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}

/// One delivery attempt: the HTTP status, or why there was none.
fn post(m: &Message) -> Result<u16, String> {
    let resp = crate::outbound::agent()
        .post(&m.url)
        .header("Content-Type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", "Notification")
        .header("x-amz-sns-message-id", &m.id)
        .header("x-amz-sns-topic-arn", &m.topic)
        .send(&m.body)
        .map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// A webhook URL without what may carry a secret (user info, query).
fn loggable(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = no_query.split_once("://") else {
        return no_query.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketmeter_domain::subscriptions::NotificationAction;

    #[test]
    fn logged_urls_carry_no_secrets() {
        assert_eq!(
            loggable("https://u:pw@hooks.example/x?token=s"),
            "https://hooks.example/x"
        );
        assert_eq!(
            loggable("http://127.0.0.1:9/hook?k=v"),
            "http://127.0.0.1:9/hook"
        );
        assert_eq!(loggable("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn envelopes_are_sns_notifications() {
        let n = Notification {
            action: NotificationAction::SubscribeSuccess,
            product_code: "p".into(),
            customer_identifier: "c".into(),
            customer_account: "1".into(),
            free_trial: true,
        };
        let topic = topic_arn(&n);
        assert_eq!(
            topic,
            "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-p"
        );
        let v: serde_json::Value =
            serde_json::from_str(&envelope("id", &topic, &n, OffsetDateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(v["Type"], "Notification");
        let m: serde_json::Value = serde_json::from_str(v["Message"].as_str().unwrap()).unwrap();
        assert_eq!(m["action"], "subscribe-success");
        assert_eq!(m["isFreeTrialTermPresent"], "true");
        let e = Notification {
            action: NotificationAction::EntitlementUpdated,
            ..n
        };
        assert!(topic_arn(&e).contains("aws-mp-entitlement-notification-p"));
    }
}
