//! The month's usage, handed from the query that reads it to the settle, a batch of accounts
//! at a time.
//!
//! Why batches: on SQLite the usage is read on a thread of its own. Handed over one account at
//! a time, the settle's async task and that thread woke each other about 100,000 times each at
//! 1M accounts, on a 2-core machine where the settle's writer is waiting for a core. A batch of
//! [`USAGE_BATCH`] accounts costs one hand-over. The channel holds [`STREAM_BUFFER`] accounts
//! (plus the batch being filled and the one being read), so a slow writer holds the reader
//! back and memory stays flat.
//!
//! The stream ends only when the sender says so ([`UsageSender::finish`]). A sender that goes
//! away without saying it (its thread panicked, its task was cancelled) ends the stream with
//! an error: otherwise the settle would take a month cut short for a whole one.

use crate::domain::bill::ApiUsage;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::sync::mpsc;

/// One account's calls in a month, by API, as the month's usage stream delivers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUsage {
    pub account_id: String,
    pub usage: Vec<ApiUsage>,
}

/// How many accounts the channel holds, in batches.
pub const STREAM_BUFFER: usize = 4096;

/// Accounts per hand-over.
pub const USAGE_BATCH: usize = 256;

/// What travels down the channel.
enum Message {
    Accounts(Vec<AccountUsage>),
    Failed(anyhow::Error),
    /// The last message of a stream read to its end.
    End,
}

/// The sending end: the query reading the month's usage.
pub struct UsageSender {
    out: mpsc::Sender<Message>,
    batch: Vec<AccountUsage>,
}

/// The receiving end: a month's usage totals per account, in account order, one account at a
/// time (also as a [`Stream`]).
pub struct UsageStream {
    batches: mpsc::Receiver<Message>,
    batch: std::vec::IntoIter<AccountUsage>,
    /// The sender said the stream ended ([`Message::End`] or [`Message::Failed`]).
    ended: bool,
}

/// A bounded usage channel.
pub fn usage_channel() -> (UsageSender, UsageStream) {
    let (out, batches) = mpsc::channel(STREAM_BUFFER / USAGE_BATCH);
    let sender = UsageSender {
        out,
        batch: Vec::with_capacity(USAGE_BATCH),
    };
    let stream = UsageStream {
        batches,
        batch: Vec::new().into_iter(),
        ended: false,
    };
    (sender, stream)
}

impl UsageSender {
    /// Queues one account, handing the batch over once it is full. `false`: the settle has
    /// gone away, and the sender should stop.
    pub async fn send(&mut self, account: AccountUsage) -> bool {
        match self.push(account) {
            Some(full) => self.out.send(Message::Accounts(full)).await.is_ok(),
            None => true,
        }
    }

    /// [`UsageSender::send`] from a thread that is not the runtime's.
    pub fn blocking_send(&mut self, account: AccountUsage) -> bool {
        match self.push(account) {
            Some(full) => self.out.blocking_send(Message::Accounts(full)).is_ok(),
            None => true,
        }
    }

    /// Hands over the accounts queued, then the end of the stream: `error` if any, or its
    /// normal end.
    pub async fn finish(mut self, error: Option<anyhow::Error>) {
        for batch in self.last(error) {
            if self.out.send(batch).await.is_err() {
                return;
            }
        }
    }

    /// [`UsageSender::finish`] from a thread that is not the runtime's.
    pub fn blocking_finish(mut self, error: Option<anyhow::Error>) {
        for batch in self.last(error) {
            if self.out.blocking_send(batch).is_err() {
                return;
            }
        }
    }

    fn push(&mut self, account: AccountUsage) -> Option<Vec<AccountUsage>> {
        self.batch.push(account);
        (self.batch.len() == USAGE_BATCH).then(|| std::mem::replace(&mut self.batch, Vec::with_capacity(USAGE_BATCH)))
    }

    /// What is left to send: the accounts queued, then the end.
    fn last(&mut self, error: Option<anyhow::Error>) -> Vec<Message> {
        let queued = std::mem::take(&mut self.batch);
        let queued = (!queued.is_empty()).then_some(Message::Accounts(queued));
        let end = error.map_or(Message::End, Message::Failed);
        queued.into_iter().chain([end]).collect()
    }
}

impl UsageStream {
    /// The next account; `None` at the end of the stream.
    pub async fn recv(&mut self) -> Option<anyhow::Result<AccountUsage>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for UsageStream {
    type Item = anyhow::Result<AccountUsage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(account) = self.batch.next() {
                return Poll::Ready(Some(Ok(account)));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(self.batches.poll_recv(cx)) {
                Some(Message::Accounts(batch)) => self.batch = batch.into_iter(),
                Some(Message::Failed(e)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Message::End) => self.ended = true,
                None => {
                    self.ended = true;
                    let e = anyhow::anyhow!("the month's usage stopped before its end (its reader went away)");
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: usize) -> AccountUsage {
        AccountUsage {
            account_id: format!("a{n}"),
            usage: Vec::new(),
        }
    }

    /// Every account arrives once and in order, across full batches and the last partial one,
    /// and an error comes after the accounts sent before it.
    #[tokio::test(flavor = "current_thread")]
    async fn accounts_arrive_in_order_across_batches_then_the_error() {
        let n = USAGE_BATCH * 2 + 3;
        let (mut out, mut stream) = usage_channel();
        let sending = tokio::spawn(async move {
            for i in 0..n {
                assert!(out.send(account(i)).await);
            }
            out.finish(Some(anyhow::anyhow!("disk on fire"))).await;
        });
        let mut got = Vec::new();
        let error = loop {
            match stream.recv().await {
                Some(Ok(a)) => got.push(a.account_id),
                Some(Err(e)) => break e.to_string(),
                None => panic!("the stream ended without its error"),
            }
        };
        sending.await.unwrap();
        assert_eq!(got, (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>());
        assert_eq!(error, "disk on fire");
        assert!(stream.recv().await.is_none());
    }

    /// A sender that goes away without finishing (a panic, a cancelled task) ends the stream
    /// with an error, not as if the month had been read to its end.
    #[tokio::test(flavor = "current_thread")]
    async fn a_sender_gone_without_finishing_is_an_error_not_the_end() {
        let (mut out, mut stream) = usage_channel();
        for i in 0..USAGE_BATCH + 1 {
            assert!(out.send(account(i)).await);
        }
        drop(out);
        for i in 0..USAGE_BATCH {
            assert_eq!(stream.recv().await.unwrap().unwrap().account_id, format!("a{i}"));
        }
        let error = stream.recv().await.expect("an error, not the end").unwrap_err();
        assert!(error.to_string().contains("stopped before its end"), "{error}");
        assert!(stream.recv().await.is_none());

        let (out, mut stream) = usage_channel();
        out.finish(None).await;
        assert!(stream.recv().await.is_none(), "a finished empty stream simply ends");
    }

    /// A sender on a thread of its own (as SQLite's is) stops once the settle is gone.
    #[test]
    fn a_blocking_sender_learns_that_the_settle_went_away() {
        let (mut out, stream) = usage_channel();
        drop(stream);
        let sent = (0..USAGE_BATCH)
            .map(|i| out.blocking_send(account(i)))
            .collect::<Vec<_>>();
        assert!(
            sent[..USAGE_BATCH - 1].iter().all(|&ok| ok),
            "only a full batch is handed over"
        );
        assert!(!sent[USAGE_BATCH - 1]);
    }
}
