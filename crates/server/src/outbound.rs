//! Requests the server makes itself (to sellers' fulfillment URLs and webhooks): blocking ureq
//! calls, run on the blocking pool; no redirects followed, every status returned as it is, 10
//! seconds at most each.

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a fulfillment page the admin API reports back.
const BODY_EXCERPT: u64 = 2048;

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into()
}

/// What the seller's site answered to the subscribe POST.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FulfillmentAnswer {
    pub url: String,
    pub status: Option<u16>,
    /// Where the site redirects the buyer (the usual answer: 302 to a sign-up page).
    pub location: Option<String>,
    /// The start of the page it answered with.
    pub body: Option<String>,
    /// Why there was no answer (unreachable, timeout, bad URL).
    pub error: Option<String>,
}

/// POSTs the form AWS Marketplace posts when a buyer subscribes: `x-amzn-marketplace-token`,
/// plus `x-amzn-marketplace-offer-type=free-trial` for free trials.
pub(crate) fn post_registration_token(
    url: &str,
    token: &str,
    free_trial: bool,
) -> FulfillmentAnswer {
    let mut form = vec![("x-amzn-marketplace-token", token)];
    if free_trial {
        form.push(("x-amzn-marketplace-offer-type", "free-trial"));
    }
    let mut answer = FulfillmentAnswer {
        url: url.to_string(),
        status: None,
        location: None,
        body: None,
        error: None,
    };
    match agent().post(url).send_form(form) {
        Ok(mut resp) => {
            answer.status = Some(resp.status().as_u16());
            answer.location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            answer.body = resp
                .body_mut()
                .with_config()
                .limit(BODY_EXCERPT)
                .read_to_string()
                .ok()
                .filter(|b| !b.is_empty());
        }
        Err(e) => answer.error = Some(e.to_string()),
    }
    answer
}
