//! A client's sending: due messages sent on schedule or as the in-flight window allows,
//! their stamps, and the send lag that is loadgen's own or held by the server.

use std::sync::atomic::Ordering;

use super::{Client, Ctx, Status, encode_message};
use crate::stamp::Stamp;

/// Outbound bytes a client may hold before further sends are skipped (and counted as
/// stalled): the server stopped reading.
const MAX_OUTBOUND: usize = 16 << 20;

impl Client {
    /// Writes as much of the outbound buffer as the socket takes.
    pub(super) fn flush(&mut self, cx: &mut Ctx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if let Err(e) = conn.flush(cx.registry) {
            self.lost_connection(cx, format!("write: {e}"));
            return;
        }
        if !conn.backed_up()
            && let Some(since) = conn.held_since.take()
        {
            let now = cx.clock.now_ns();
            cx.tally.lag.backlog_cleared(now.saturating_sub(since));
        }
    }

    /// The schedule reached message `seq`: send it now, or once the in-flight window
    /// has room.
    pub(crate) fn on_due(&mut self, seq: u32, cx: &mut Ctx<'_>) {
        self.due_until = self.due_until.max(seq.saturating_add(1));
        if !cx.rules.stamps.role.sends() {
            return;
        }
        if self.returning() {
            // A client away sends nothing: what falls due meanwhile is skipped, neither
            // sent nor counted, so its absence never shows up as server latency.
            self.next_seq = self.due_until;
            return;
        }
        let window = cx.rules.window;
        if window > 0 && self.in_flight >= window && self.status == Status::Ready {
            if cx.rules.schedule.intended_ns(self.plan.id, seq) >= cx.rules.measure_from_ns {
                cx.tally.deferred += 1;
            }
            return;
        }
        self.pump(Some(seq), cx);
    }

    /// Sends due messages while the window allows. Only a message sent at the moment it
    /// fell due (`on_time`) counts towards the schedule lag: waiting for the window is
    /// the server's doing, not loadgen's.
    pub(super) fn pump(&mut self, on_time: Option<u32>, cx: &mut Ctx<'_>) {
        let window = cx.rules.window;
        while self.next_seq < self.due_until && (window == 0 || self.in_flight < window) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let scheduled_ns = cx.rules.schedule.intended_ns(self.plan.id, seq);
            let sent_ns = cx.clock.now_ns();
            let stamp = Stamp {
                client: self.plan.id,
                seq,
                scheduled_ns,
                sent_ns,
            };
            let measured = scheduled_ns >= cx.rules.measure_from_ns;
            let held = match &mut self.conn {
                // Queued behind bytes the server has not taken: its lag, not ours.
                Some(conn) if measured && conn.backed_up() => {
                    conn.held_since.get_or_insert(sent_ns);
                    true
                }
                _ => false,
            };
            if !self.send(&stamp, cx) {
                continue;
            }
            if window > 0 {
                self.in_flight += 1;
            }
            cx.tally.sent_all += 1;
            if measured {
                self.sent_measured += 1;
                if let Some(shared) = cx.sent.get(self.plan.id as usize) {
                    shared.store(self.sent_measured, Ordering::Relaxed);
                }
                cx.tally.sent_measured += 1;
                if on_time == Some(seq) {
                    // The window's hold is planned; lag counts from the release.
                    let release_ns = cx.rules.send_window.release_ns(scheduled_ns);
                    cx.tally.lag.record(release_ns, sent_ns);
                } else if window > 0 {
                    self.deferred.push(seq);
                }
                if held {
                    cx.tally.lag.record_held();
                }
            }
        }
    }

    /// Queues one load message and writes it if the socket takes it. Returns whether the
    /// message was queued (the connection is ready and its buffer not full).
    pub(super) fn send(&mut self, stamp: &Stamp, cx: &mut Ctx<'_>) -> bool {
        if self.status != Status::Ready {
            return false;
        }
        let Some(conn) = &mut self.conn else {
            return false;
        };
        if conn.out.len() - conn.sent > MAX_OUTBOUND {
            cx.tally.errors.stalled_sends += 1;
            return false;
        }
        let wire = cx.rules.stamps.outgoing(stamp);
        encode_message(&wire, cx.rules, &self.plan, &mut conn.out);
        self.flush(cx);
        true
    }
}
