//! Signed webhook deliveries.
//!
//! Each event is POSTed as JSON (`{"id", "type", "created", "data"}`) with
//! the header `Vmail-Signature: t=<unix seconds>,v1=<hex>` where `<hex>`
//! is HMAC-SHA256 with the endpoint's secret over `"<t>.<body>"` (the
//! scheme of Stripe's webhooks). A receiver recomputes the HMAC over the
//! raw body it received, compares in constant time, and refuses a `t` too
//! far from its clock (replays). Any `2xx` answer is a delivery; anything
//! else, or no answer within the timeout, is retried with the same `id`
//! and body.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::WebhookSecret;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "Vmail-Signature";

/// Whole request (connect, send, answer) must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Connecting must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// HMAC-SHA256 of `message` under `key`, lower-case hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

/// The `Vmail-Signature` value for `body` sent at unix time `t`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("t={t},v1={}", hmac_sha256_hex(secret, &signed))
}

/// Reads an endpoint's secret (a `secret_file` at each delivery, so that
/// it can be rotated without a restart).
pub fn secret_bytes(secret: &WebhookSecret) -> Result<Vec<u8>, String> {
    match secret {
        WebhookSecret::Inline(s) => Ok(s.as_bytes().to_vec()),
        WebhookSecret::File(p) => match std::fs::read_to_string(p) {
            Ok(s) if !s.trim().is_empty() => Ok(s.trim().as_bytes().to_vec()),
            Ok(_) => Err(format!("secret file {} is empty", p.display())),
            Err(e) => Err(format!("cannot read secret file {}: {e}", p.display())),
        },
    }
}

/// The HTTP client of the deliveries: bounded timeouts, no redirects (a
/// redirect is not a delivery); with `ca_file`, its certificates trusted
/// besides the public roots.
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(f) = ca_file {
        let pem = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: not PEM certificates: {e}", f.display()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vmail/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The delivery clients, one per `ca_file` (none: the public roots only),
/// built on first use and again when the file changes.
#[derive(Default)]
pub struct Clients {
    by_ca: Mutex<HashMap<Option<PathBuf>, Built>>,
}

/// A client and the modification time of the `ca_file` it was built from.
type Built = (Option<SystemTime>, reqwest::Client);

impl Clients {
    /// The client for endpoints trusting `ca_file`.
    pub fn get(&self, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
        let stamp = ca_file.and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        let key = ca_file.map(Path::to_path_buf);
        let mut map = self.by_ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built, c)) = map.get(&key) {
            if *built == stamp {
                return Ok(c.clone());
            }
        }
        let c = client(ca_file)?;
        map.insert(key, (stamp, c.clone()));
        Ok(c)
    }
}

/// POSTs `body` to `url`, signed; `Ok` on a 2xx answer.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    event_id: &str,
    body: String,
) -> Result<(), String> {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sig = signature(secret, t, body.as_bytes());
    let answer = client
        .post(url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, sig)
        .header("Vmail-Event-Id", event_id)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_time_and_body() {
        let s = signature(b"whsec_0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        let expected = hmac_sha256_hex(b"whsec_0123456789abcdef", b"1700000000.{\"a\":1}");
        assert_eq!(s, format!("t=1700000000,v1={expected}"));
        assert_ne!(
            s,
            signature(b"whsec_0123456789abcdef", 1_700_000_001, b"{\"a\":1}")
        );
        assert_ne!(
            s,
            signature(b"whsec_0123456789abcdef", 1_700_000_000, b"{\"a\":2}")
        );
    }

    #[test]
    fn secret_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "  abc\n").unwrap();
        assert_eq!(
            secret_bytes(&WebhookSecret::File(p.clone())).unwrap(),
            b"abc"
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(secret_bytes(&WebhookSecret::File(p)).is_err());
        assert!(secret_bytes(&WebhookSecret::File(dir.path().join("none"))).is_err());
    }
}
