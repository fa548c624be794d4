//! A worker's part in a graceful shutdown, and what happens when a worker stops early.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shared::Frame;

use super::Worker;
use crate::stats::CloseReason;

/// Where a worker is between running and a finished shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Serving.
    Running,
    /// Shutdown begun: no more input is read; waiting until every worker got here.
    Quiescing,
    /// Every worker is quiet: flushing the last output until the deadline.
    Draining(Instant),
}

impl Drop for Worker {
    /// A worker that leaves its loop early (a poll error, a panic) still counts as
    /// quiet, so a graceful shutdown of the others never waits for it, and it starts
    /// that shutdown: its users would otherwise keep their nicks and places forever and
    /// every newcomer routed to it would be lost.
    fn drop(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Quiescing;
            self.shared.quiesced.fetch_add(1, Ordering::AcqRel);
            let cause = if std::thread::panicking() {
                format!("worker {} panicked", self.index)
            } else {
                format!("worker {} stopped", self.index)
            };
            self.shared.fail(cause);
        }
    }
}

impl Worker {
    /// Moves the shutdown along; true when the worker may exit.
    pub(super) fn advance_shutdown(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Running => {
                if self.shared.shutting_down() {
                    // Everything this worker produced is already in other workers'
                    // channels (route_outbox ran at the end of this turn), so counting
                    // it quiet is safe.
                    self.phase = Phase::Quiescing;
                    self.shared.quiesced.fetch_add(1, Ordering::AcqRel);
                    // No more input is read, so nothing waits to be read any more.
                    let waiting = self.backlog.drain(..).chain(self.throttled.drain(..));
                    for slot in waiting.chain(self.parked.drain(..)).collect::<Vec<_>>() {
                        if let Some(conn) = self.conns.get_mut(slot) {
                            conn.waiting = None;
                        }
                    }
                }
                false
            }
            Phase::Quiescing => {
                if self.shared.quiesced.load(Ordering::Acquire) < self.shared.workers.len() {
                    return false;
                }
                // Nobody produces deliveries any more: take the last ones, then say bye.
                self.drain_channel(usize::MAX);
                let deadline = now
                    .checked_add(self.shared.config.shutdown_timeout)
                    .unwrap_or(now + Duration::from_secs(3600));
                let reason = if self.shared.failure().is_some() {
                    "internal failure, it should restart"
                } else {
                    "stopped by its operator"
                };
                let notice = Frame::Shutdown {
                    reason: reason.to_owned(),
                };
                for slot in 0..self.conns.slots() {
                    let Some(mut conn) = self.conns.take(slot) else {
                        continue;
                    };
                    // Everyone is told, also a client that said goodbye or closed its
                    // side and is still being sent what it is owed; not one closed for
                    // misbehaving, whose stream ends with the reason.
                    let owed = matches!(
                        conn.close_reason(),
                        Some(CloseReason::Goodbye | CloseReason::Eof)
                    ) && !conn.fin_sent();
                    if conn.session.is_some() && !conn.is_closing() {
                        self.reply(&mut conn, &notice);
                    } else if conn.session.is_some() && owed {
                        self.reply_final(&mut conn, &notice);
                    }
                    conn.begin_close(CloseReason::Shutdown, deadline - now, now);
                    self.put_back(slot, conn);
                }
                self.phase = Phase::Draining(deadline);
                false
            }
            Phase::Draining(deadline) => !self.conns.any() || now >= deadline,
        }
    }

    /// Closes every connection left (at the end of the loop).
    pub(super) fn close_all(&mut self) {
        for slot in 0..self.conns.slots() {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.close_now(CloseReason::Shutdown);
            }
            self.close(slot);
        }
        // Departure notices to other workers no longer matter: they are shutting down.
        for out in &mut self.outbox {
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use mio::{Poll, Token, Waker};

    use crate::config::Config;
    use crate::worker::{Shared, Worker, WorkerParts};

    fn shared(workers: usize) -> (Arc<Shared>, Vec<WorkerParts>, Poll) {
        let acceptor = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(acceptor.registry(), Token(1)).expect("waker"));
        let config = Config {
            workers,
            ..Config::default()
        };
        let (shared, parts) =
            Shared::new(config, None, Default::default(), waker, None).expect("shared state");
        (shared, parts, acceptor)
    }

    #[test]
    fn a_worker_that_dies_shuts_the_server_down_without_waiting_for_itself() {
        let (shared, mut parts, _acceptor) = shared(2);
        let survivor = Worker::new(1, Arc::clone(&shared), parts.pop().expect("parts"));
        let survivor = std::thread::spawn(move || survivor.run());
        let doomed = Worker::new(0, Arc::clone(&shared), parts.pop().expect("parts"));
        let died = std::thread::spawn(move || {
            let _worker = doomed;
            panic!("worker 0 dies");
        })
        .join();
        assert!(died.is_err());
        // The dead worker counts as quiet at once (the survivor may have followed).
        assert!(shared.quiesced.load(Ordering::Acquire) >= 1);
        assert!(shared.shutting_down(), "a dead worker starts a shutdown");
        assert_eq!(shared.failure().as_deref(), Some("worker 0 panicked"));

        let start = Instant::now();
        while !survivor.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the surviving worker never finished its shutdown"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        survivor.join().expect("no panic").expect("no poll error");
        assert_eq!(shared.quiesced.load(Ordering::Acquire), 2);
    }

    #[test]
    fn a_worker_that_stops_normally_is_counted_once_and_is_no_failure() {
        let (shared, mut parts, _acceptor) = shared(1);
        let worker = Worker::new(0, Arc::clone(&shared), parts.pop().expect("parts"));
        shared.begin_shutdown();
        std::thread::spawn(move || worker.run())
            .join()
            .expect("no panic")
            .expect("no poll error");
        assert_eq!(shared.quiesced.load(Ordering::Acquire), 1);
        assert_eq!(shared.failure(), None);
    }
}
