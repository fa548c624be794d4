//! A room's message log: the ids and receive times it hands out, and its most recent
//! messages, bounded per room; and the eviction that keeps all rooms' logs within the
//! server-wide budget, taking the oldest messages of the largest rooms first.
//!
//! Sizes are accounted as the encoded message plus a fixed overhead per entry, plus a
//! fixed overhead per room that holds any history (a room with no members is kept only
//! while it has history, so its bookkeeping is charged to the budget too).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::engine::{HistoryLimits, Page, Replay};

/// Accounted bytes of one kept message besides its encoding: the queue slot, the
/// `Bytes` handle and the allocation's header.
pub(super) const ENTRY_OVERHEAD: usize = 64;

/// Accounted bytes of a room that holds history: its name, map entries and log.
pub(super) const ROOM_OVERHEAD: usize = 512;

#[derive(Debug)]
struct Entry {
    id: u64,
    bytes: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// One room's ids and kept messages.
#[derive(Debug)]
pub(super) struct RoomLog {
    /// Ids of this room start after it: the room's creation time in nanoseconds since
    /// the epoch, so ids of an earlier room of the same name (before a restart, or
    /// before the room was forgotten) are told apart from this one's.
    base: u64,
    /// The latest id handed out (`base` before the first message).
    last: u64,
    /// The latest receive time handed out: times never go backwards within a room.
    last_time: u64,
    /// Kept messages, oldest first, ids contiguous.
    entries: VecDeque<Entry>,
    /// Accounted size of `entries` (without the room overhead).
    bytes: usize,
}

impl RoomLog {
    /// An empty log whose ids start after `now_ns`.
    pub(super) fn new(now_ns: u64) -> Self {
        Self {
            base: now_ns,
            last: now_ns,
            last_time: now_ns,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The latest id handed out.
    pub(super) fn last(&self) -> u64 {
        self.last
    }

    /// The next id and its receive time (`now_ns`, or the previous message's time if
    /// the clock went back).
    pub(super) fn stamp(&mut self, now_ns: u64) -> (u64, u64) {
        self.last += 1;
        self.last_time = self.last_time.max(now_ns);
        (self.last, self.last_time)
    }

    /// Takes back the id just stamped (its message could not be encoded).
    pub(super) fn unstamp(&mut self) {
        self.last -= 1;
    }

    /// Accounted size: entries plus the room's overhead while it holds any.
    pub(super) fn size(&self) -> usize {
        if self.entries.is_empty() {
            0
        } else {
            self.bytes + ROOM_OVERHEAD
        }
    }

    /// Whether it holds no message.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps message `id` (the one just stamped), dropping the oldest past the room's
    /// limits. Returns the change in accounted size.
    pub(super) fn keep(&mut self, id: u64, bytes: Bytes, limits: &HistoryLimits) -> isize {
        let before = self.size();
        if limits.messages > 0 && bytes.len() + ENTRY_OVERHEAD <= limits.room_bytes {
            let entry = Entry { id, bytes };
            self.bytes += entry.size();
            self.entries.push_back(entry);
        }
        while self.entries.len() > limits.messages || self.bytes > limits.room_bytes {
            self.pop_oldest();
        }
        delta(before, self.size())
    }

    /// Drops the oldest messages until the accounted size is at most `level`. Returns
    /// the bytes freed.
    pub(super) fn trim_to(&mut self, level: usize) -> usize {
        let before = self.size();
        while self.size() > level {
            self.pop_oldest();
        }
        before - self.size()
    }

    fn pop_oldest(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.size();
        }
    }

    /// Whether `id` is one this room handed out, or its start (`base`: nothing seen).
    fn knows(&self, id: u64) -> bool {
        (self.base..=self.last).contains(&id)
    }

    /// Every kept message after `since`, and how many after it are no longer kept;
    /// `None` if `since` is not an id of this room.
    pub(super) fn since(&self, since: u64) -> Option<Replay> {
        if !self.knows(since) {
            return None;
        }
        let first_kept = self.entries.front().map_or(self.last + 1, |e| e.id);
        let missed = first_kept.saturating_sub(since + 1);
        let skip = usize::try_from(since.saturating_sub(first_kept - 1)).unwrap_or(usize::MAX);
        Some(Replay {
            messages: self
                .entries
                .iter()
                .skip(skip)
                .map(|e| e.bytes.clone())
                .collect(),
            missed,
        })
    }

    /// The newest `limit` kept messages with ids below `before` (0: no bound); `None`
    /// if `before` is neither 0 nor an id of this room (or the one after its last).
    pub(super) fn page(&self, before: u64, limit: usize) -> Option<Page> {
        let end = if before == 0 { self.last + 1 } else { before };
        if !(self.base + 1..=self.last + 1).contains(&end) {
            return None;
        }
        let first_kept = self.entries.front().map_or(self.last + 1, |e| e.id);
        let below = usize::try_from(end.saturating_sub(first_kept)).unwrap_or(usize::MAX);
        let below = below.min(self.entries.len());
        let start = below.saturating_sub(limit);
        Some(Page {
            messages: self
                .entries
                .range(start..below)
                .map(|e| e.bytes.clone())
                .collect(),
            more: start > 0,
        })
    }
}

fn delta(before: usize, after: usize) -> isize {
    isize::try_from(after).unwrap_or(isize::MAX) - isize::try_from(before).unwrap_or(isize::MAX)
}

/// Adds a signed change to the server-wide accounted size.
pub(super) fn account(held: &AtomicUsize, change: isize) {
    if change >= 0 {
        held.fetch_add(change.unsigned_abs(), Ordering::Relaxed);
    } else {
        held.fetch_sub(change.unsigned_abs(), Ordering::Relaxed);
    }
}

/// Trims the largest logs, oldest messages first, until all together account for at
/// most `target` bytes: every log larger than a common level is cut down to it, so a
/// small room keeps its history while the largest ones pay. Returns whether some log
/// was emptied (its room may have to go).
pub(super) fn evict<'a>(
    logs: impl Iterator<Item = &'a Mutex<RoomLog>>,
    held: &AtomicUsize,
    target: usize,
) -> bool {
    let logs: Vec<&Mutex<RoomLog>> = logs.collect();
    let mut sizes: Vec<usize> = logs.iter().map(|log| log.lock().size()).collect();
    let level = level_for(&mut sizes, target);
    let mut emptied = false;
    for log in logs {
        let mut log = log.lock();
        if log.size() > level {
            let freed = log.trim_to(level);
            held.fetch_sub(freed, Ordering::Relaxed);
            emptied |= log.is_empty();
        }
    }
    emptied
}

/// The largest level such that the sizes, each cut down to it, sum to at most
/// `target`. Sorts `sizes`.
fn level_for(sizes: &mut [usize], target: usize) -> usize {
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = sizes.iter().sum();
    if total <= target {
        return usize::MAX;
    }
    // With the k largest cut to level L and the rest whole: k * L + rest <= target.
    let mut rest = total;
    for k in 1..=sizes.len() {
        rest -= sizes[k - 1];
        let next = sizes.get(k).copied().unwrap_or(0);
        if rest <= target {
            let level = (target - rest) / k;
            if level >= next {
                return level;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests;
