//! One HTTP attempt: POST the body with the Standard Webhooks headers, and say what came back.
//!
//! Redirects are not followed (a receiver that moved must be reconfigured, not trusted to
//! forward signed messages); every attempt has a deadline for the whole exchange; the
//! answer's body is read up to a small limit and dropped. An error never names the secret,
//! and names the URL only as `config::display_url` shows it.

use super::config::display_url;
use crate::cli::VERSION;
use crate::domain::webhook::Answer;
use std::io::Read;
use std::time::Duration;

/// TLS for every HTTPS request billrun makes (webhooks, pushes): OpenSSL, as for the
/// database, with Mozilla's root certificates built in.
pub fn tls() -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .build()
}

/// The HTTP client deliverers share: no redirects, statuses are answers (not errors), a
/// deadline per attempt.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .tls_config(crate::webhooks::send::tls())
        .max_redirects(0)
        .user_agent(format!("billrun/{}", VERSION.split(' ').next().unwrap_or("")))
        .build()
        .into()
}

/// The headers of one attempt.
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: i64,
    pub signature: String,
}

/// Sends one attempt; the answer and, when there was no 2xx, a one-line reason.
pub fn post(agent: &ureq::Agent, url: &str, headers: &Signed, body: &[u8]) -> (Answer, Option<String>) {
    let sent = agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", headers.id)
        .header("webhook-timestamp", headers.timestamp.to_string())
        .header("webhook-signature", &headers.signature)
        .send(body);
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read a little of the answer so the connection can be reused; what it says is
            // kept (shortened) as the reason of a failure.
            let mut said = Vec::new();
            let _ = response.into_body().into_reader().take(512).read_to_end(&mut said);
            let reason = (!(200..300).contains(&status)).then(|| {
                let text: String = String::from_utf8_lossy(&said)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(200)
                    .collect();
                let text = text.trim();
                if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {text}")
                }
            });
            (Answer::Status(status), reason)
        }
        Err(e) => {
            let why = match &e {
                ureq::Error::Timeout(_) => "timed out".to_owned(),
                ureq::Error::Io(io) => format!("connection failed: {io}"),
                other => other.to_string(),
            };
            // A message of the HTTP stack may quote the URL: show it as billrun shows URLs.
            let why = why.replace(url, &display_url(url));
            (Answer::NoAnswer, Some(why))
        }
    }
}
