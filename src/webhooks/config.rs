//! The webhooks file (`--webhooks FILE`, or `BILLRUN_WEBHOOKS`): which receivers billrun calls,
//! with which secret, for which event types.
//!
//! ```toml
//! timeout_seconds = 10          # optional: how long one attempt may take (1 to 60)
//!
//! [[endpoints]]
//! name = "notifier"
//! url = "https://notifier.internal/billrun"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
//! events = ["bill.issued", "account.arrears"]
//! ```
//!
//! Every problem is named with the file, the line and the field. A secret is never repeated in
//! a message: a wrong one is described, not shown.

use super::sign::Secret;
use crate::domain::webhook::EventType;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// The longest an endpoint's name may be; it appears in logs, lists and metrics' labels.
const MAX_NAME: usize = 64;

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub secret: Secret,
    pub events: BTreeSet<EventType>,
}

#[derive(Clone, Debug)]
pub struct Webhooks {
    pub endpoints: Vec<Endpoint>,
    pub timeout: Duration,
}

impl Webhooks {
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    timeout_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    endpoints: Vec<FileEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoint {
    name: Spanned<String>,
    url: Spanned<String>,
    secret: Spanned<String>,
    events: Spanned<Vec<Spanned<String>>>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

/// The parts of a URL billrun shows: scheme, host, port and path, without a user, password or
/// query, which may hold tokens.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

impl Webhooks {
    /// Parses and checks a webhooks file; `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Webhooks, String> {
        Webhooks::parse_file(text, source).map_err(|e| hide_secrets(&e))
    }

    fn parse_file(text: &str, source: &str) -> Result<Webhooks, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" line {}:", line_of(text, &s)))
                .unwrap_or_default();
            format!("webhooks {source}:{at} {}", e.message())
        })?;
        let at = |span: Range<usize>, field: &str, what: String| {
            format!("webhooks {source} line {}, {field}: {what}", line_of(text, &span))
        };
        let timeout = match file.timeout_seconds {
            None => Duration::from_secs(10),
            Some(t) if (1..=60).contains(t.get_ref()) => Duration::from_secs(*t.get_ref()),
            Some(t) => {
                return Err(at(
                    t.span(),
                    "timeout_seconds",
                    format!("{} is out of range (1 to 60)", t.get_ref()),
                ))
            }
        };
        if file.endpoints.is_empty() {
            return Err(format!("webhooks {source}: has no [[endpoints]]"));
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for e in file.endpoints {
            let name = e.name.get_ref().clone();
            let ok_name = !name.is_empty()
                && name.chars().count() <= MAX_NAME
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok_name {
                return Err(at(
                    e.name.span(),
                    "name",
                    format!("'{name}' must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"),
                ));
            }
            if name.starts_with("whsec_") {
                return Err(at(
                    e.name.span(),
                    "name",
                    "is a webhook secret (it starts as one does), which goes in `secret`; a name is what billrun \
                     lists and labels the endpoint's metrics with"
                        .into(),
                ));
            }
            if endpoints.iter().any(|x| x.name == name) {
                return Err(at(e.name.span(), "name", format!("'{name}' appears twice")));
            }
            let url = e.url.get_ref().trim().to_owned();
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            let host_ok = url.split_once("://").is_some_and(|(_, r)| {
                let authority = r.split(['/', '?', '#']).next().unwrap_or("");
                !authority.is_empty() && !authority.contains(char::is_whitespace)
            });
            if !scheme_ok || !host_ok {
                return Err(at(
                    e.url.span(),
                    "url",
                    format!("'{}' is not an http:// or https:// URL with a host", display_url(&url)),
                ));
            }
            let secret = Secret::parse(e.secret.get_ref()).map_err(|why| at(e.secret.span(), "secret", why))?;
            let mut events = BTreeSet::new();
            for t in e.events.get_ref() {
                match EventType::parse(t.get_ref()) {
                    Some(et) => {
                        events.insert(et);
                    }
                    None => {
                        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                        return Err(at(
                            t.span(),
                            "events",
                            format!("unknown event type '{}' (known: {})", t.get_ref(), known.join(", ")),
                        ));
                    }
                }
            }
            if events.is_empty() {
                return Err(at(e.events.span(), "events", "names no event type".into()));
            }
            endpoints.push(Endpoint {
                name,
                url,
                secret,
                events,
            });
        }
        Ok(Webhooks { endpoints, timeout })
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Webhooks, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read webhooks file {}: {e}", path.display()))?;
        Webhooks::parse(&text, &path.display().to_string())
    }
}

/// `text` with every Standard Webhooks secret in it (`whsec_` and its base64) hidden: a secret
/// pasted into the wrong field must not be repeated in an error, which logs and CI keep.
fn hide_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("whsec_") {
        out.push_str(&rest[..at]);
        out.push_str("whsec_(hidden)");
        let after = &rest[at + "whsec_".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_the_wrong_field_is_not_repeated_in_the_error() {
        let text = GOOD.replace(
            "url = \"http://10.0.0.5:8080/hooks\"",
            "url = \"whsec_yw8DxH3B2mJz6t8d8D0Mxa0k6YtN+2Qx\"",
        );
        let err = Webhooks::parse(&text, "w.toml").unwrap_err();
        assert!(!err.contains("yw8DxH3B2mJz6t8d8D0Mxa0k6YtN"), "{err}");
        let name = GOOD.replace(
            "name = \"gateway\"",
            "name = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
        );
        let err = Webhooks::parse(&name, "w.toml").unwrap_err();
        assert!(!err.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{err}");
        assert!(err.contains("is a webhook secret"), "{err}");
        assert_eq!(
            hide_secrets("a whsec_ab+/= b whsec_"),
            "a whsec_(hidden) b whsec_(hidden)"
        );
    }

    const GOOD: &str = r#"
[[endpoints]]
name = "notifier"
url = "https://notifier.internal/billrun?token=abc"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["bill.issued", "account.arrears"]

[[endpoints]]
name = "gateway"
url = "http://10.0.0.5:8080/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["account.suspended", "account.restored"]
"#;

    #[test]
    fn a_good_file_names_its_endpoints() {
        let w = Webhooks::parse(GOOD, "w.toml").unwrap();
        assert_eq!(w.endpoints.len(), 2);
        assert_eq!(w.timeout, Duration::from_secs(10));
        let n = w.endpoint("notifier").unwrap();
        assert!(n.events.contains(&EventType::BillIssued) && n.events.contains(&EventType::AccountArrears));
        assert_eq!(n.events.len(), 2);
    }

    #[test]
    fn problems_name_the_line_and_the_field_and_never_the_secret() {
        let cases = [
            (
                GOOD.replace("bill.issued", "bill.paid"),
                "line 6, events: unknown event type 'bill.paid'",
            ),
            (
                GOOD.replace("\"gateway\"", "\"notifier\""),
                "line 9, name: 'notifier' appears twice",
            ),
            (GOOD.replace("http://10", "ftp://10"), "line 10, url:"),
            (
                GOOD.replacen("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!secret!!", 1),
                "line 5, secret:",
            ),
            (
                GOOD.replacen(
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    1,
                ),
                "line 5, secret:",
            ),
            (
                GOOD.replace("events = [\"account.suspended\", \"account.restored\"]", "events = []"),
                "line 12, events: names no event type",
            ),
            (
                format!("timeout_seconds = 0\n{GOOD}"),
                "line 1, timeout_seconds: 0 is out of range",
            ),
            (
                GOOD.replace("name = \"gateway\"", "name = \"gate way\""),
                "line 9, name:",
            ),
            (GOOD.replace("secret", "secrets"), "line 5"),
            ("".into(), "has no [[endpoints]]"),
        ];
        for (text, want) in cases {
            let e = Webhooks::parse(&text, "w.toml").unwrap_err();
            assert!(e.contains(want), "{e}\nwanted: {want}");
            assert!(e.starts_with("webhooks w.toml"), "{e}");
            assert!(!e.contains("MfKQ9r8") && !e.contains("!!secret!!"), "a secret in: {e}");
        }
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        assert_eq!(
            display_url("https://u:p@h.example:8443/a/b?token=x#f"),
            "https://h.example:8443/a/b"
        );
        assert_eq!(display_url("http://h"), "http://h");
        assert_eq!(display_url("nonsense"), "(not a URL)");
    }
}
