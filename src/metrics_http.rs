//! The metrics over HTTP, the two ways batch jobs and workers hand them to Prometheus: pushed
//! to a Pushgateway at the end of a job (`--push URL`), and served on `/metrics` by the daemon
//! (`daemon --metrics-address ADDR`). What is sent is `reporting::metrics`' text, read from
//! the database at that moment.

use crate::error::Unavailable;
use crate::webhooks::config::display_url;
use std::io::Read;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The content type of Prometheus' text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where the metrics of job `billrun` go on a Pushgateway whose address is `url`: its
/// `/metrics/job/billrun` group, unless `url` names a group itself. A query (a token a proxy
/// in front of the Pushgateway asks for) stays at the end.
pub fn push_target(url: &str) -> String {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let mut target = if path.contains("/metrics/job/") {
        path.to_owned()
    } else {
        format!("{}/metrics/job/billrun", path.trim_end_matches('/'))
    };
    if let Some(query) = query {
        target = format!("{target}?{query}");
    }
    target
}

/// Replaces the group's metrics on the Pushgateway with `text` (HTTP PUT, as the Pushgateway
/// documents for a job that reports its whole state).
pub async fn push(url: &str, text: String) -> anyhow::Result<()> {
    let target = push_target(url);
    let shown = display_url(&target);
    let answer = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .tls_config(crate::webhooks::send::tls())
            .build()
            .into();
        agent
            .put(&target)
            .header("content-type", TEXT_FORMAT)
            .send(text.as_bytes())
            .map(|r| {
                let status = r.status().as_u16();
                let mut said = String::new();
                let _ = r.into_body().into_reader().take(300).read_to_string(&mut said);
                (status, said)
            })
    })
    .await?;
    match answer {
        Ok((status, _)) if (200..300).contains(&status) => Ok(()),
        Ok((status, said)) => Err(Unavailable(format!(
            "the Pushgateway at {shown} answered HTTP {status}: {}",
            said.trim()
        ))
        .into()),
        Err(e) => Err(Unavailable(format!("cannot push the metrics to {shown}: {e}")).into()),
    }
}

/// Serves `GET /metrics` on `listener` until the future is dropped, one connection at a time;
/// `render` reads the metrics afresh for each request. A request that is not understood gets
/// an error status; a client that stalls is cut off after 5 seconds.
pub async fn serve<F, Fut>(listener: TcpListener, render: F) -> std::convert::Infallible
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let mut head = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            std::io::Result::Ok(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let line = String::from_utf8_lossy(&head);
        let mut words = line.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("");
        let (status, kind, body) = match (method, path) {
            ("GET", "/metrics") => match render().await {
                Ok(text) => ("200 OK", TEXT_FORMAT, text),
                Err(e) => {
                    tracing::error!(
                        error = crate::error::describe(&e),
                        "cannot read the metrics for a scrape"
                    );
                    (
                        "503 Service Unavailable",
                        "text/plain",
                        "cannot read the metrics: the database is unavailable\n".into(),
                    )
                }
            },
            ("GET", _) => ("404 Not Found", "text/plain", "billrun serves /metrics\n".into()),
            _ => ("405 Method Not Allowed", "text/plain", "GET /metrics\n".into()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(response.as_bytes())).await;
        let _ = conn.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_go_to_the_job_group_unless_one_is_named() {
        assert_eq!(push_target("http://gw:9091"), "http://gw:9091/metrics/job/billrun");
        assert_eq!(push_target("http://gw:9091/"), "http://gw:9091/metrics/job/billrun");
        assert_eq!(
            push_target("http://gw:9091/metrics/job/billrun/instance/eu"),
            "http://gw:9091/metrics/job/billrun/instance/eu"
        );
        assert_eq!(
            push_target("http://gw:9091/?token=a/b"),
            "http://gw:9091/metrics/job/billrun?token=a/b"
        );
        assert_eq!(
            push_target("http://gw:9091/metrics/job/x?token=t"),
            "http://gw:9091/metrics/job/x?token=t"
        );
    }
}
