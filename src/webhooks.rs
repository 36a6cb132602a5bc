//! Delivers the webhooks the store owes (`storage::Delivery`): POSTs each task event's JSON to
//! its URL, signed with HMAC-SHA256 of the body under the task key's webhook secret (the
//! server's own for tasks made without a key), in headers:
//! `X-Reel-Signature: sha256=<hex>`, `X-Reel-Event`, `X-Reel-Delivery` (a sequence number that
//! retries keep, for the receiver to dedupe). A 2xx answer settles it; anything else is
//! retried with exponential backoff (1 s doubling to 5 min, [`MAX_ATTEMPTS`] tries in all,
//! about 17 minutes), then given up and logged. Owed deliveries live in sled, so a restart
//! delivers what was owed.
//!
//! Unless the server allows private targets (`--webhook-private`), deliveries reach only
//! public addresses (`api::webhook_target`): a URL naming another address is given up at
//! once, a host name is resolved here and its other addresses dropped (so a name that comes
//! to resolve to the private network still reaches nothing there), and no redirect is
//! followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::webhook_target::{is_public, refusal};
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;
use storage::{now_ms, Delivery, Store};
use tokio::task::JoinSet;

/// Tries per delivery before it is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// How often the outbox is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Most deliveries in flight at once.
const BATCH: usize = 32;
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// When the try after `attempts` failed ones is due.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(16)).min(300))
}

/// Resolves host names to their public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let public: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Why one try failed, and whether trying again could help.
struct Failure {
    why: String,
    final_: bool,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            why: e.to_string(),
            final_: false,
        }
    }
}

/// Runs forever, delivering what is due; `private` lets deliveries reach loopback, private
/// and link-local addresses.
pub async fn deliver(store: Arc<Store>, private: bool) {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if !private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: no HTTP client");
            return;
        }
    };
    loop {
        tokio::time::sleep(POLL).await;
        let s = store.clone();
        let due = tokio::task::spawn_blocking(move || s.due_deliveries(now_ms(), BATCH)).await;
        let due = match due {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                continue;
            }
            Err(_) => continue,
        };
        let mut sends = JoinSet::new();
        for d in due {
            let (client, store) = (client.clone(), store.clone());
            sends.spawn(async move { settle(&client, &store, d, private).await });
        }
        while sends.join_next().await.is_some() {}
    }
}

/// One try of one delivery, and its bookkeeping.
async fn settle(client: &reqwest::Client, store: &Arc<Store>, d: Delivery, private: bool) {
    let outcome = send(client, store, &d, private).await;
    let store = store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let result = match outcome {
            Ok(()) => {
                metrics::counter!("reel_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                store.delivery_done(&d)
            }
            Err(Failure { why, final_ }) if final_ || d.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(seq = d.seq, url = %d.url, %why, "webhook given up");
                metrics::counter!("reel_webhook_deliveries_total", "outcome" => "given_up")
                    .increment(1);
                store.delivery_done(&d)
            }
            Err(Failure { why, .. }) => {
                tracing::debug!(seq = d.seq, url = %d.url, %why, "webhook will be retried");
                metrics::counter!("reel_webhook_deliveries_total", "outcome" => "retried")
                    .increment(1);
                let due = now_ms() + backoff(d.attempts).as_millis() as u64;
                store.delivery_retry(&d, due)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot update the webhook outbox");
        }
    })
    .await;
}

async fn send(
    client: &reqwest::Client,
    store: &Arc<Store>,
    d: &Delivery,
    private: bool,
) -> Result<(), Failure> {
    if !private {
        // Tasks stored before the server stopped allowing private targets may name one.
        let url = reqwest::Url::parse(&d.url)?;
        if let Some(why) = refusal(&url) {
            return Err(Failure { why, final_: true });
        }
    }
    let owner = d.owner.clone();
    let s = store.clone();
    let secret = tokio::task::spawn_blocking(move || s.webhook_secret(owner.as_deref())).await??;
    let res = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-reel-signature", signature(&secret, d.body.as_bytes()))
        .header("x-reel-event", d.event.name())
        .header("x-reel-delivery", d.seq)
        .body(d.body.clone())
        .send()
        .await?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", res.status()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(12), Duration::from_secs(300));
    }
}
