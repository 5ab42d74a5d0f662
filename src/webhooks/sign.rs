//! Signatures as the Standard Webhooks specification defines them: the secret is `whsec_`
//! followed by the key in base64; `webhook-signature` is `v1,` followed by the base64 of the
//! HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`.
//!
//! A [`Secret`] never shows its key: its `Debug` prints a placeholder, so it cannot reach a
//! log or an error by accident.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret in the specification's format.
const PREFIX: &str = "whsec_";

#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// A secret as written in the webhooks file. The message of a refusal describes the
    /// problem and never repeats the text.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let Some(key) = text.strip_prefix(PREFIX) else {
            return Err(format!("must start with '{PREFIX}' followed by the key in base64"));
        };
        let key = STANDARD
            .decode(key)
            .map_err(|_| format!("the part after '{PREFIX}' is not valid base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "the key is {} bytes; it must be 24 to 64 (the specification's range)",
                key.len()
            ));
        }
        Ok(Secret(key))
    }

    /// The `webhook-signature` header of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' own tests.
    #[test]
    fn signs_the_reference_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_never_shows_its_key() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            let e = Secret::parse(bad).unwrap_err();
            assert!(
                !e.contains("MfKQ") && !e.contains("base64!") && !e.contains("c2hvcnQ"),
                "{e}"
            );
        }
    }
}
