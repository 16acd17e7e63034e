//! Work a server process does beside requests: expiring and escalating approval requests whose
//! deadline passed, closing access reviews past their due date, and delivering the webhook
//! outbox (signed, retried with backoff). Every
//! step is a database transaction, so several server processes may run it at once.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use warden_service::store::WebhookDelivery;
use warden_service::Warden;

/// Where approval events are posted, and the secret their signatures use.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Deliveries are abandoned after this many failed attempts (about a day of retries).
pub const MAX_ATTEMPTS: i64 = 30;

/// How long one process holds a delivery it is sending before another may try it.
const LEASE_MS: i64 = 60_000;

/// The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The
/// timestamp is signed too, so a receiver can refuse replays of old deliveries.
pub fn signature(secret: &str, unix_seconds: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(format!("{unix_seconds}.{body}").as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The wait before attempt `attempts + 1`: 2 s doubling, at most an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exponent = attempts.clamp(0, 12) as u32;
    (2_000i64 << exponent).min(3_600_000)
}

/// Sends the deliveries due at `now`; returns how many were sent.
pub async fn deliver_webhooks(
    warden: &Warden,
    client: &reqwest::Client,
    config: &WebhookConfig,
    now: i64,
) -> warden_service::Result<usize> {
    let store = warden.store();
    let due = store.due_webhooks(now, 50).await?;
    let mut sent = 0;
    for delivery in due {
        // The clock is read per delivery: a slow batch must neither sign with an old time nor
        // take a lease that has already run out.
        if !store
            .claim_webhook(&delivery, crate::now_ms() + LEASE_MS)
            .await?
        {
            continue;
        }
        match post(client, config, &delivery, crate::now_ms()).await {
            Ok(()) => {
                store
                    .webhook_delivered(delivery.id, crate::now_ms())
                    .await?;
                sent += 1;
            }
            Err(error) => {
                let next = if delivery.attempts + 1 >= MAX_ATTEMPTS {
                    i64::MAX
                } else {
                    crate::now_ms() + backoff_ms(delivery.attempts)
                };
                tracing::warn!(delivery = delivery.id, attempts = delivery.attempts + 1, %error, "webhook delivery failed");
                store.webhook_failed(delivery.id, next, &error).await?;
            }
        }
    }
    Ok(sent)
}

async fn post(
    client: &reqwest::Client,
    config: &WebhookConfig,
    delivery: &WebhookDelivery,
    now: i64,
) -> Result<(), String> {
    let response = client
        .post(&config.url)
        .header("content-type", "application/json")
        .header("x-warden-delivery", delivery.id.to_string())
        .header(
            "x-warden-signature",
            signature(&config.secret, now / 1000, &delivery.body),
        )
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

/// Runs the background work every `every` until the process ends.
pub fn spawn(warden: Warden, webhook: Option<WebhookConfig>, every: Duration) {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let now = crate::now_ms();
            if let Err(error) = warden.sweep_approvals(now).await {
                tracing::warn!(%error, "approval deadlines not swept");
            }
            if let Err(error) = warden.close_due_campaigns(now).await {
                tracing::warn!(%error, "access reviews past their due date not closed");
            }
            if let Some(config) = &webhook {
                if let Err(error) = deliver_webhooks(&warden, &client, config, now).await {
                    tracing::warn!(%error, "webhooks not delivered");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_time_and_body() {
        let a = signature("s3cret", 1_700_000_000, "{\"x\":1}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, "{\"x\":1}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, "{\"x\":2}"));
        assert_ne!(a, signature("other", 1_700_000_000, "{\"x\":1}"));
        // RFC 4231 test case 2 shape: the HMAC is the standard one.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_ms(0), 2_000);
        assert_eq!(backoff_ms(1), 4_000);
        assert_eq!(backoff_ms(5), 64_000);
        assert_eq!(backoff_ms(29), 3_600_000);
    }
}
