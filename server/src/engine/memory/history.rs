//! A room's message log: the ids and receive times it hands out, and its most recent
//! messages, bounded per room; and the eviction that keeps all rooms' logs within the
//! server-wide budget, taking the oldest messages of the largest rooms first.
//!
//! A room keeps its messages' bytes back to back in fixed-size chunks ([`Chunks`]) with
//! a small index of lengths, rather than one allocation per message: what a room holds
//! is then its chunks and index, counted exactly, and since every chunk has the same
//! size, chunks freed by one room are reused by any other and the heap does not
//! fragment however messages come and go. A room that holds any message is also charged
//! a fixed overhead for its bookkeeping (a room with no members is kept only while it
//! has history, so that is charged to the budget too). Replays and pages copy the kept
//! bytes out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::engine::{HistoryLimits, Page, Replay};

mod chunks;

use chunks::Chunks;

/// Accounted bytes of a room that holds history: its name, map entries, member table
/// and log, besides the two buffers.
pub(super) const ROOM_OVERHEAD: usize = 1024;

/// Index bytes per kept message (its length, as a `u32`).
const INDEX_ENTRY: usize = std::mem::size_of::<u32>();

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
    /// The kept messages' encodings, oldest first, back to back.
    bytes: Chunks,
    /// Each kept message's length, oldest first; ids are contiguous and end at `last`.
    lens: VecDeque<u32>,
}

impl RoomLog {
    /// An empty log whose ids start after `now_ns`.
    pub(super) fn new(now_ns: u64) -> Self {
        Self {
            base: now_ns,
            last: now_ns,
            last_time: now_ns,
            bytes: Chunks::default(),
            lens: VecDeque::new(),
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

    /// Accounted size: what the buffers have reserved, plus the room's overhead while
    /// it holds any message.
    pub(super) fn size(&self) -> usize {
        let buffers = self.bytes.reserved() + self.lens.capacity() * INDEX_ENTRY;
        if self.lens.is_empty() {
            buffers
        } else {
            buffers + ROOM_OVERHEAD
        }
    }

    /// Whether it holds no message.
    pub(super) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The id of the oldest kept message (`last + 1` when none is kept).
    fn first_kept(&self) -> u64 {
        self.last + 1 - self.lens.len() as u64
    }

    /// Keeps `message`, the one just stamped, dropping the oldest past the room's
    /// limits. Returns the change in accounted size.
    pub(super) fn keep(&mut self, message: &[u8], limits: &HistoryLimits) -> isize {
        let before = self.size();
        let fits = message.len() + INDEX_ENTRY <= limits.room_bytes;
        match u32::try_from(message.len()) {
            Ok(len) if limits.messages > 0 && fits => {
                self.bytes.push(message);
                self.lens.push_back(len);
            }
            // Not kept, and nothing older may be replayed across the gap it leaves.
            _ => {
                self.bytes.clear();
                self.lens.clear();
            }
        }
        while !self.lens.is_empty()
            && (self.lens.len() > limits.messages || self.used() > limits.room_bytes)
        {
            self.pop_oldest();
        }
        self.shrink_if_sparse();
        delta(before, self.size())
    }

    /// Bytes the kept messages and their index use (not what is reserved).
    fn used(&self) -> usize {
        self.bytes.len() + self.lens.len() * INDEX_ENTRY
    }

    /// Drops the oldest messages until the accounted size is at most `level` (a room
    /// holding any message holds at least a chunk). Returns the bytes freed.
    pub(super) fn trim_to(&mut self, level: usize) -> usize {
        let before = self.size();
        while !self.lens.is_empty() && self.size() > level {
            self.pop_oldest();
            self.shrink_if_sparse();
        }
        before.saturating_sub(self.size())
    }

    fn pop_oldest(&mut self) {
        if let Some(len) = self.lens.pop_front() {
            self.bytes.pop(len as usize);
        }
    }

    /// Gives back the index's reserved memory once it uses a quarter of it or less, and
    /// everything when no message is left (an empty log accounts for nothing). Chunks
    /// free themselves.
    fn shrink_if_sparse(&mut self) {
        if self.lens.is_empty() {
            self.bytes.clear();
            self.lens = VecDeque::new();
        } else if self.lens.capacity() > 4 * self.lens.len().max(16) {
            self.lens.shrink_to(2 * self.lens.len());
        }
    }

    /// Whether `id` is one this room handed out, or its start (`base`: nothing seen).
    fn knows(&self, id: u64) -> bool {
        (self.base..=self.last).contains(&id)
    }

    /// Copies of the kept messages from index `from` (0: the oldest) to `to`.
    fn copies(&self, from: usize, to: usize) -> Vec<Bytes> {
        let mut offset: usize = self.lens.range(..from).map(|&len| len as usize).sum();
        self.lens
            .range(from..to)
            .map(|&len| {
                let len = len as usize;
                let copy = Bytes::from(self.bytes.copy(offset, len));
                offset += len;
                copy
            })
            .collect()
    }

    /// Every kept message after `since`, and how many after it are no longer kept;
    /// `None` if `since` is not an id of this room.
    pub(super) fn since(&self, since: u64) -> Option<Replay> {
        if !self.knows(since) {
            return None;
        }
        let first_kept = self.first_kept();
        let missed = first_kept.saturating_sub(since + 1);
        let skip = usize::try_from(since.saturating_sub(first_kept - 1)).unwrap_or(usize::MAX);
        let skip = skip.min(self.lens.len());
        Some(Replay {
            messages: self.copies(skip, self.lens.len()),
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
        let below = usize::try_from(end.saturating_sub(self.first_kept())).unwrap_or(usize::MAX);
        let below = below.min(self.lens.len());
        let start = below.saturating_sub(limit);
        Some(Page {
            messages: self.copies(start, below),
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
/// most `target` bytes: every log larger than a common level is cut down to it, the
/// largest first (and of equal ones, the one written least recently), stopping as soon
/// as the total fits, so a small room keeps its history while the largest ones pay.
/// Returns whether some log was emptied (its room may have to go).
pub(super) fn evict<'a>(
    logs: impl Iterator<Item = &'a Mutex<RoomLog>>,
    held: &AtomicUsize,
    target: usize,
) -> bool {
    let mut logs: Vec<(usize, u64, &Mutex<RoomLog>)> = logs
        .map(|log| {
            let log_ref = log.lock();
            (log_ref.size(), log_ref.last_time, log)
        })
        .collect();
    let mut sizes: Vec<usize> = logs.iter().map(|(size, ..)| *size).collect();
    let level = level_for(&mut sizes, target);
    logs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut emptied = false;
    for (_, _, log) in logs {
        if held.load(Ordering::Relaxed) <= target {
            break;
        }
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
