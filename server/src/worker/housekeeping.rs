//! A worker's once-a-second housekeeping: greeting silent newcomers, telling refused
//! ones, closing stalled frames, idle connections and closes past their deadline,
//! keepalive pings, and publishing the thread's run and run-queue wait times.

use std::sync::atomic::Ordering;
use std::time::Instant;

use shared::{ErrorCode, Frame};

use super::{REJECT_GRACE, Worker};
use crate::connection::{ConnState, WaitList};
use crate::sched::ThreadSched;
use crate::session::Session;
use crate::stats::CloseReason;

impl Worker {
    pub(super) fn housekeeping(&mut self, now: Instant) {
        if let Some(account) = ThreadSched::current() {
            let stats = self.stats();
            stats.cpu_us.store(account.run_ns / 1000, Ordering::Relaxed);
            stats
                .cpu_wait_us
                .store(account.wait_ns / 1000, Ordering::Relaxed);
        }
        let idle_timeout = self.shared.config.idle_timeout;
        let greet_after = self.shared.config.greet_after;
        let frame_timeout = self.shared.config.frame_timeout;
        let handshake_timeout = self.shared.config.tls_handshake_timeout;
        for slot in 0..self.conns.slots() {
            let silent_newcomer = self.conns.get(slot).is_some_and(|c| {
                c.state() == ConnState::Detecting { reject: false }
                    && !greet_after.is_zero()
                    && c.ready_since()
                        .is_some_and(|ready| now.saturating_duration_since(ready) >= greet_after)
            });
            if silent_newcomer && self.phase == super::Phase::Running {
                self.greet_silent(slot, now);
            }
            let Some(mut conn) = self.conns.take(slot) else {
                continue;
            };
            let silent = now.saturating_duration_since(conn.last_input);
            let held_back = matches!(conn.waiting, Some(WaitList::Backlog | WaitList::Throttled));
            if held_back && conn.partial_since.is_some() {
                // The server holds it back (rate limit, a congested worker): that time
                // does not count against its frame. The large holders parked by a full
                // inbound budget are the exception: their clock runs, or a budget full
                // of stalled frames would never empty.
                conn.partial_since = Some(now);
            }
            if conn.deadline_passed(now) {
                // A closing peer that stopped reading does not hold its slot forever.
                conn.close_now(CloseReason::Reset);
            } else if !conn.is_closing()
                && conn.is_handshaking()
                && now.saturating_duration_since(conn.accepted_at) >= handshake_timeout
            {
                conn.close_now(CloseReason::TlsHandshakeTimeout);
            } else if conn.is_rejected() {
                if now.saturating_duration_since(conn.accepted_at) >= REJECT_GRACE {
                    self.refuse_full(&mut conn);
                }
            } else if !conn.is_closing()
                && !frame_timeout.is_zero()
                && conn
                    .partial_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= frame_timeout)
            {
                let text = format!(
                    "a frame stayed incomplete for {}s; closing",
                    frame_timeout.as_secs()
                );
                let reason = CloseReason::StalledFrame;
                self.fail(&mut conn, ErrorCode::IDLE_TIMEOUT, &text, reason);
            } else if !conn.is_closing() && !idle_timeout.is_zero() {
                let registered = conn.session.as_ref().is_some_and(Session::is_registered);
                if silent >= idle_timeout {
                    let text = format!("silent for {}s; closing", silent.as_secs());
                    self.fail(&mut conn, ErrorCode::IDLE_TIMEOUT, &text, CloseReason::Idle);
                } else if silent >= idle_timeout / 2 && !conn.pinged && registered {
                    conn.pinged = true;
                    let token = self.next_ping_token;
                    self.next_ping_token += 1;
                    self.reply(&mut conn, &Frame::Ping { token });
                }
            }
            self.put_back(slot, conn);
        }
    }

    /// A newcomer that has sent nothing for `--greet-after` is a person waiting to be
    /// greeted: unless a last read finds its first bytes, it is taken to speak text.
    fn greet_silent(&mut self, slot: usize, now: Instant) {
        self.service_read(slot, now, false);
        let Some(mut conn) = self.conns.take(slot) else {
            return;
        };
        if conn.state() == (ConnState::Detecting { reject: false }) {
            conn.decoder.assume_text();
            self.on_first_bytes(&mut conn);
        }
        self.put_back(slot, conn);
    }
}
