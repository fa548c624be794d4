//! The event loop's side of the connection: up, waiting to reconnect, or reconnecting,
//! and the bookkeeping of one reconnect effort (when it started, how many attempts,
//! the backoff schedule).
//!
//! Connecting blocks for up to `--connect-timeout`, so each attempt runs on a thread of
//! its own and reports on a channel: the event loop keeps answering the person (Ctrl+C,
//! `/quit`) while it waits.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::backoff::{Backoff, ReconnectPolicy, SplitMix64};
use crate::connection::{self, Connected, FrameWriter, NetEvent};
use crate::error::ClientError;
use crate::transport::TlsSettings;

/// Where the connection stands.
#[derive(Debug)]
pub(super) enum Link {
    /// Connected: frames go to `writer`, the reader thread's events come on `net`.
    Up {
        writer: FrameWriter,
        net: Receiver<NetEvent>,
    },
    /// Lost; the next attempt starts at `at`.
    Waiting { at: Instant },
    /// An attempt runs on its own thread; its one result comes on `result`.
    Connecting {
        result: Receiver<Result<Connected, ClientError>>,
    },
}

impl Link {
    /// The connection's writer, if connected.
    pub(super) fn writer(&mut self) -> Option<&mut FrameWriter> {
        match self {
            Link::Up { writer, .. } => Some(writer),
            _ => None,
        }
    }

    /// Leaves the current connection, if any, closing it so its reader thread ends.
    pub(super) fn abandon(&mut self, at: Instant) {
        if let Link::Up { writer, .. } = std::mem::replace(self, Link::Waiting { at }) {
            writer.close();
        }
    }
}

/// One effort to get the connection back, from the loss to success or giving up.
#[derive(Debug)]
pub(super) struct Reconnector {
    backoff: Backoff,
    /// When the connection was lost, while reconnecting.
    lost_at: Option<Instant>,
    /// Why it was lost (for the final error if we give up).
    cause: String,
}

/// What to do after a loss or a failed attempt.
#[derive(Debug)]
pub(super) enum Next {
    /// Try again after `delay`; this will be attempt `attempt`.
    Retry { delay: Duration, attempt: u32 },
    /// `--reconnect-for` has passed.
    GiveUp(ClientError),
}

impl Reconnector {
    pub(super) fn new(policy: ReconnectPolicy) -> Self {
        Reconnector {
            backoff: Backoff::new(policy, SplitMix64::from_entropy()),
            lost_at: None,
            cause: String::new(),
        }
    }

    /// The connection was lost at `now` because of `cause`. A loss before the last
    /// reconnect finished (the server welcomed us, then dropped us while re-joining)
    /// continues that effort: its schedule and its `--reconnect-for` bound go on, so a
    /// server that keeps failing that way is not hammered at the shortest wait.
    pub(super) fn lost(&mut self, cause: String, now: Instant) {
        if self.lost_at.is_none() {
            self.lost_at = Some(now);
            self.backoff.reset();
            self.cause = cause;
        }
    }

    /// The next wait, or giving up if `--reconnect-for` has passed. `last` says why
    /// the last attempt failed, if one was made.
    pub(super) fn next(&mut self, now: Instant, last: Option<&ClientError>) -> Next {
        let lost_at = *self.lost_at.get_or_insert(now);
        let budget = self.backoff.policy().give_up_after;
        let tried_for = now.saturating_duration_since(lost_at);
        if tried_for >= budget {
            return Next::GiveUp(ClientError::GaveUp {
                cause: self.cause.clone(),
                tried_for,
                attempts: self.backoff.attempts(),
                last: last.map_or_else(|| "none".to_owned(), ToString::to_string),
            });
        }
        // The last attempt starts no later than the end of `--reconnect-for`.
        let delay = self.backoff.next_delay().min(budget - tried_for);
        Next::Retry {
            delay,
            attempt: self.backoff.attempts(),
        }
    }

    /// Attempts made since the loss.
    pub(super) fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }

    /// Why the connection was lost, while reconnecting.
    pub(super) fn cause(&self) -> &str {
        &self.cause
    }

    /// The connection is back and every room re-joined: the next loss starts over.
    pub(super) fn succeeded(&mut self) {
        self.lost_at = None;
        self.backoff.reset();
    }
}

/// Starts one connect attempt on its own thread; its result arrives on the returned
/// channel (capacity one, so the thread never blocks on it).
pub(super) fn spawn_attempt(
    addr: String,
    addrs: Vec<SocketAddr>,
    tls: Option<TlsSettings>,
    timeout: Duration,
) -> Result<Receiver<Result<Connected, ClientError>>, ClientError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::Builder::new()
        .name("chat-connect".to_owned())
        .spawn(move || {
            let _ = tx.send(connection::connect(&addr, &addrs, tls.as_ref(), timeout));
        })
        .map_err(|e| ClientError::Local(format!("cannot start the connect thread: {e}")))?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> String {
        "reset".to_owned()
    }

    fn retry(next: Next) -> (Duration, u32) {
        match next {
            Next::Retry { delay, attempt } => (delay, attempt),
            Next::GiveUp(e) => panic!("gave up: {e}"),
        }
    }

    #[test]
    fn an_effort_is_bounded_and_a_loss_during_it_does_not_restart_it() {
        let mut r = Reconnector::new(ReconnectPolicy::new(Duration::from_secs(10)));
        let t0 = Instant::now();
        r.lost(lost(), t0);
        assert_eq!(retry(r.next(t0, None)).1, 1);
        assert_eq!(retry(r.next(t0, None)).1, 2);
        // Welcomed, then lost again before the rooms were back: the same effort.
        r.lost(lost(), t0 + Duration::from_secs(5));
        let (delay, attempt) = retry(r.next(t0 + Duration::from_secs(9), None));
        assert_eq!(attempt, 3);
        // No attempt starts after the bound.
        assert!(delay <= Duration::from_secs(1), "{delay:?}");
        match r.next(
            t0 + Duration::from_secs(10),
            Some(&ClientError::Local(lost())),
        ) {
            Next::GiveUp(ClientError::GaveUp {
                attempts,
                tried_for,
                ..
            }) => {
                assert_eq!(attempts, 3);
                assert_eq!(tried_for, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn success_starts_the_next_effort_afresh() {
        let mut r = Reconnector::new(ReconnectPolicy::new(Duration::from_secs(10)));
        let t0 = Instant::now();
        r.lost(lost(), t0);
        for _ in 0..5 {
            r.next(t0, None);
        }
        r.succeeded();
        let t1 = t0 + Duration::from_secs(60);
        r.lost(lost(), t1);
        let (delay, attempt) = retry(r.next(t1, None));
        assert_eq!(attempt, 1);
        assert!(delay <= Duration::from_millis(250), "{delay:?}");
    }
}
