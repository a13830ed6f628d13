//! Webhook delivery: each organization's events, in order, to each of its webhooks, signed with
//! HMAC-SHA256, at least once, retried with exponential backoff.
//!
//! Every replica runs a worker. A worker claims one due webhook at a time with a lease (`FOR UPDATE
//! SKIP LOCKED` on PostgreSQL, so replicas never wait on each other), delivers its pending events one
//! request each, and advances the webhook's cursor. A replica that dies mid-delivery loses its lease
//! when it expires and another replica resends from the cursor: a receiver may see an event twice
//! (deduplicate on `idbridge-event-id`), never miss one.

use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::store::admin::WebhookJob;
use crate::store::{Store, micros};

/// Events sent per claim before the lease is renewed by claiming again.
const BATCH: i64 = 100;
const LEASE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A webhook URL must be https, and must not point into the service's own network (loopback,
/// private, link-local), unless `allow_private` is set (for tests and closed networks).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    let host = parsed.host().ok_or("the URL has no host")?;
    if allow_private {
        return match parsed.scheme() {
            "https" | "http" => Ok(()),
            _ => Err("the URL must be https".into()),
        };
    }
    if parsed.scheme() != "https" {
        return Err("the URL must be https".into());
    }
    let ip: Option<IpAddr> = match host {
        url::Host::Ipv4(a) => Some(a.into()),
        url::Host::Ipv6(a) => Some(a.into()),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
            return Err("the URL points to a private or loopback address".into());
        }
        url::Host::Domain(_) => None,
    };
    if ip.is_some_and(|ip| !is_public(ip)) {
        return Err("the URL points to a private or loopback address".into());
    }
    Ok(())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_unspecified()
                || (a.segments()[0] & 0xfe00) == 0xfc00
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some_and(|v4| !is_public(v4.into())))
        }
    }
}

/// The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The
/// timestamp is signed so a receiver can refuse old replays.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The delay before retry number `attempts` (1-based): 2, 4, 8 ... seconds, at most an hour.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32;
    Duration::from_secs(2u64.saturating_pow(exp)).min(MAX_BACKOFF)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // A redirect could lead the delivery (and its signature) anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent("idbridge-webhooks")
        .build()
        .expect("a client without custom TLS settings builds")
}

/// Delivers what one claimed webhook has pending. Returns true when it delivered everything.
async fn deliver(store: &Store, http: &reqwest::Client, job: &WebhookJob) -> bool {
    let events = match store
        .events_after(&job.org_id, job.delivered_seq, BATCH)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "webhook: cannot read events");
            return false;
        }
    };
    let mut delivered = job.delivered_seq;
    for event in &events {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let t = time::OffsetDateTime::now_utc().unix_timestamp();
        let result = http
            .post(&job.url)
            .header("content-type", "application/json")
            .header("idbridge-event-id", &event.id)
            .header("idbridge-signature", signature(&job.secret, t, &body))
            .body(body)
            .send()
            .await;
        let failure = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Some(format!("request failed: {e}")),
        };
        if let Some(error) = failure {
            let attempts = job.attempts + 1;
            let next =
                micros(time::OffsetDateTime::now_utc()) + backoff(attempts).as_micros() as i64;
            tracing::warn!(webhook = %job.id, seq = event.seq, attempts, %error, "webhook delivery failed");
            if let Err(e) = store
                .webhook_failed(&job.id, delivered, attempts, next, &error)
                .await
            {
                tracing::error!(error = %e, "webhook: cannot record failure");
            }
            return false;
        }
        delivered = event.seq;
    }
    if let Err(e) = store.webhook_delivered(&job.id, delivered).await {
        tracing::error!(error = %e, "webhook: cannot record delivery");
    }
    (events.len() as i64) < BATCH
}

/// Claims and delivers due webhooks until none is due; returns how many claims it made.
pub async fn run_once(store: &Store, http: &reqwest::Client) -> usize {
    let mut claims = 0;
    loop {
        let now = time::OffsetDateTime::now_utc();
        let lease = micros(now) + LEASE.as_micros() as i64;
        match store.claim_webhook(micros(now), lease).await {
            Ok(Some(job)) => {
                claims += 1;
                deliver(store, http, &job).await;
            }
            Ok(None) => return claims,
            Err(e) => {
                tracing::error!(error = %e, "webhook: cannot claim");
                return claims;
            }
        }
    }
}

/// The worker every replica runs beside the server.
pub async fn worker(store: Store, interval: Duration) {
    let http = client();
    loop {
        run_once(&store, &http).await;
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_and_public() {
        assert!(check_url("https://hooks.example.com/idbridge", false).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
    }

    /// The signature is HMAC-SHA256 over "t.body", checked against an independent computation
    /// (RFC 4231 test case 2's key and data shape: key "Jefe").
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 §4.3: HMAC-SHA-256("Jefe", "what do ya want for nothing?").
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        // The signed string is "0.what do ya want ...", so it differs from the RFC vector; compute
        // the RFC vector through the same primitive to prove the primitive is HMAC-SHA256.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(sig.starts_with("t=0,v1="));
        assert_ne!(sig, signature("Jefe", 1, b"what do ya want for nothing?"));
        assert_ne!(sig, signature("jefe", 0, b"what do ya want for nothing?"));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
