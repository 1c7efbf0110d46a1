//! Webhook signatures in the Standard Webhooks scheme: HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, sent as `webhook-signature: v1,<base64>`
//! beside `webhook-id` and `webhook-timestamp`. The receiver checks the MAC and the timestamp,
//! and dedupes on the id (the delivery's idempotency key).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of a secret written in the scheme's form: the key bytes in base64.
const SECRET_PREFIX: &str = "whsec_";

/// A signing key.
///
/// ```
/// use sentinel_connectors::http::signing::WebhookSecret;
/// let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
/// let signature = secret.sign("msg_1", 1_700_000_000, b"{}");
/// assert!(secret.verify("msg_1", 1_700_000_000, b"{}", &signature));
/// assert!(!secret.verify("msg_2", 1_700_000_000, b"{}", &signature));
/// ```
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({} bytes)", self.0.len())
    }
}

impl WebhookSecret {
    /// `whsec_` and base64 key bytes, as the scheme writes secrets; any other text is the key
    /// itself, as bytes. Fails on an empty key or bad base64 after the prefix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = match text.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|e| format!("a `{SECRET_PREFIX}` secret must be base64 after the prefix: {e}"))?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err("a webhook secret must not be empty".into());
        }
        Ok(WebhookSecret(key))
    }

    fn mac(&self, id: &str, timestamp_s: u64, body: &[u8]) -> HmacSha256 {
        // Any key length is valid for HMAC.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value: `v1,` and the base64 MAC.
    pub fn sign(&self, id: &str, timestamp_s: u64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp_s, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// The three headers of a signed delivery.
    pub fn headers(&self, id: &str, timestamp_s: u64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp_s.to_string()),
            ("webhook-signature", self.sign(id, timestamp_s, body)),
        ]
    }

    /// Whether `header` (space-separated `v1,<base64>` entries, as during a key rotation)
    /// holds a valid signature of this delivery. Compares in constant time.
    pub fn verify(&self, id: &str, timestamp_s: u64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|entry| {
            let Some(encoded) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                return false;
            };
            self.mac(id, timestamp_s, body).verify_slice(&tag).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The scheme's published reference vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY), SIGNATURE);
        assert!(secret.verify(ID, TIMESTAMP, BODY, SIGNATURE));
        let headers = secret.headers(ID, TIMESTAMP, BODY);
        assert_eq!(headers[1], ("webhook-timestamp", "1614265330".to_owned()));
        assert_eq!(headers[2].1, SIGNATURE);
    }

    #[test]
    fn any_change_fails_and_a_rotated_header_passes_on_one_entry() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert!(!secret.verify(ID, TIMESTAMP + 1, BODY, SIGNATURE));
        assert!(!secret.verify(ID, TIMESTAMP, br#"{"test": 2432232315}"#, SIGNATURE));
        assert!(!secret.verify(ID, TIMESTAMP, BODY, "v1,AAAA"));
        assert!(!secret.verify(ID, TIMESTAMP, BODY, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        let other = WebhookSecret::parse("another-key").unwrap();
        let rotated = format!("{} {SIGNATURE}", other.sign(ID, TIMESTAMP, BODY));
        assert!(secret.verify(ID, TIMESTAMP, BODY, &rotated));
        assert!(!WebhookSecret::parse("whsec_AAAA")
            .unwrap()
            .verify(ID, TIMESTAMP, BODY, SIGNATURE));
    }

    #[test]
    fn bad_secrets_are_refused_and_never_printed() {
        assert!(WebhookSecret::parse("").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!")
            .unwrap_err()
            .contains("base64"));
        let debug = format!("{:?}", WebhookSecret::parse("plain-key").unwrap());
        assert_eq!(debug, "WebhookSecret(9 bytes)");
    }
}
