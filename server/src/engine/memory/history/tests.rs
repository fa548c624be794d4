use super::*;

const LIMITS: HistoryLimits = HistoryLimits {
    messages: 3,
    room_bytes: 4 << 10,
    budget: 1 << 20,
};

/// A log with `n` messages of `len` bytes each, ids `BASE + 1..=BASE + n`.
fn log_with(n: u64, len: usize, limits: &HistoryLimits) -> RoomLog {
    let mut log = RoomLog::new(BASE);
    for _ in 0..n {
        let (id, _) = log.stamp(BASE);
        log.keep(&message(id, len), limits);
    }
    log
}

const BASE: u64 = 1_000;

fn message(id: u64, len: usize) -> Bytes {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.resize(len.max(8), b'x');
    Bytes::from(bytes)
}

fn ids(messages: &[Bytes]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| u64::from_be_bytes(m[..8].try_into().unwrap()))
        .collect()
}

#[test]
fn ids_follow_the_base_and_times_never_go_back() {
    let mut log = RoomLog::new(BASE);
    assert_eq!(log.last(), BASE);
    assert_eq!(log.stamp(5_000), (BASE + 1, 5_000));
    assert_eq!(log.stamp(4_000), (BASE + 2, 5_000), "the clock went back");
    assert_eq!(log.stamp(6_000), (BASE + 3, 6_000));
}

#[test]
fn a_room_keeps_its_newest_messages_within_its_count_and_bytes() {
    let log = log_with(5, 100, &LIMITS);
    assert_eq!(ids(&log.since(BASE).unwrap().messages), [1003, 1004, 1005]);
    // Room for two messages of 100 bytes and their index entries.
    let small = HistoryLimits {
        room_bytes: 2 * (100 + INDEX_ENTRY),
        ..LIMITS
    };
    let log = log_with(5, 100, &small);
    assert_eq!(ids(&log.since(BASE).unwrap().messages), [1004, 1005]);
    let none = HistoryLimits {
        messages: 0,
        ..LIMITS
    };
    let mut log = log_with(5, 100, &none);
    assert_eq!(log.size(), 0);
    assert_eq!(log.last(), BASE + 5, "ids go on without history");
    assert_eq!(log.stamp(BASE).0, BASE + 6);
}

#[test]
fn the_accounted_size_is_what_the_buffers_reserve() {
    let mut log = RoomLog::new(BASE);
    assert_eq!(log.size(), 0);
    let (id, _) = log.stamp(BASE);
    let first = log.keep(&message(id, 100), &LIMITS);
    let reserved = log.bytes.reserved() + log.lens.capacity() * INDEX_ENTRY;
    assert!(log.bytes.reserved() >= chunks::CHUNK, "a whole chunk");
    assert_eq!(log.size(), reserved + ROOM_OVERHEAD);
    assert_eq!(first, log.size() as isize);
    // Filled to the count limit and more: three messages of 100 bytes fit one chunk.
    for _ in 0..10 {
        let (id, _) = log.stamp(BASE);
        log.keep(&message(id, 100), &LIMITS);
    }
    assert!(
        log.bytes.reserved() < 2 * chunks::CHUNK,
        "{}",
        log.bytes.reserved()
    );
}

#[test]
fn a_message_too_large_to_keep_clears_what_came_before() {
    let limits = HistoryLimits {
        room_bytes: 1000,
        ..LIMITS
    };
    let mut log = log_with(2, 100, &limits);
    let (id, _) = log.stamp(BASE);
    log.keep(&message(id, 2000), &limits);
    let replay = log.since(BASE).unwrap();
    assert!(replay.messages.is_empty());
    assert_eq!(replay.missed, 3, "nothing replayed across the gap");
    let (id, _) = log.stamp(BASE);
    log.keep(&message(id, 10), &limits);
    assert_eq!(ids(&log.since(BASE + 3).unwrap().messages), [BASE + 4]);
}

#[test]
fn trimming_gives_reserved_memory_back() {
    let limits = HistoryLimits {
        messages: 1000,
        room_bytes: 1 << 20,
        budget: 1 << 20,
    };
    let mut log = log_with(500, 100, &limits);
    let full = log.size();
    assert!(full >= 500 * 100);
    let freed = log.trim_to(ROOM_OVERHEAD + 3 * chunks::CHUNK);
    assert!(
        log.size() <= ROOM_OVERHEAD + 3 * chunks::CHUNK,
        "{}",
        log.size()
    );
    assert_eq!(freed, full - log.size());
    let rest = log.size();
    assert_eq!(log.trim_to(0), rest);
    assert!(log.is_empty());
}

#[test]
fn a_resume_replays_what_follows_and_counts_what_is_gone() {
    let log = log_with(5, 10, &LIMITS);
    let replay = log.since(BASE + 3).unwrap();
    assert_eq!(ids(&replay.messages), [1004, 1005]);
    assert_eq!(replay.missed, 0);
    let replay = log.since(BASE + 5).unwrap();
    assert!(replay.messages.is_empty());
    assert_eq!(replay.missed, 0);
    let replay = log.since(BASE).unwrap();
    assert_eq!(ids(&replay.messages), [1003, 1004, 1005]);
    assert_eq!(replay.missed, 2, "1001 and 1002 are no longer kept");
    let replay = log.since(BASE + 1).unwrap();
    assert_eq!(replay.missed, 1);
}

#[test]
fn a_resume_from_an_id_the_room_never_handed_out_is_refused() {
    let log = log_with(5, 10, &LIMITS);
    assert_eq!(log.since(BASE + 6), None, "from the future");
    assert_eq!(log.since(BASE - 1), None, "from before the room");
    assert_eq!(log.since(0), None);
    assert_eq!(log.since(u64::MAX), None);
}

#[test]
fn pages_go_back_from_an_id() {
    let limits = HistoryLimits {
        messages: 10,
        ..LIMITS
    };
    let log = log_with(10, 10, &limits);
    let page = log.page(0, 4).unwrap();
    assert_eq!(ids(&page.messages), [1007, 1008, 1009, 1010]);
    assert!(page.more);
    let page = log.page(BASE + 7, 4).unwrap();
    assert_eq!(ids(&page.messages), [1003, 1004, 1005, 1006]);
    assert!(page.more);
    let page = log.page(BASE + 3, 4).unwrap();
    assert_eq!(ids(&page.messages), [1001, 1002]);
    assert!(!page.more);
    let page = log.page(BASE + 1, 4).unwrap();
    assert!(page.messages.is_empty());
    assert!(!page.more);
    assert_eq!(log.page(BASE + 11, 4).unwrap().messages.len(), 4);
    assert_eq!(log.page(BASE + 12, 4), None, "from the future");
    assert_eq!(log.page(BASE, 4), None, "from before the room");
}

#[test]
fn eviction_cuts_the_largest_logs_to_a_common_level() {
    let limits = HistoryLimits {
        messages: 100,
        room_bytes: 1 << 20,
        budget: 1 << 20,
    };
    // Messages of 1000 bytes, four to a chunk: rooms of ten, eight and one chunk.
    let logs: Vec<Mutex<RoomLog>> = [40, 30, 2]
        .into_iter()
        .map(|n| Mutex::new(log_with(n, 1000, &limits)))
        .collect();
    let total: usize = logs.iter().map(|l| l.lock().size()).sum();
    let held = AtomicUsize::new(total);
    // Room for the overheads and ten chunks: the two large rooms are cut to the same
    // level, the small one keeps everything.
    let target = 3 * ROOM_OVERHEAD + 10 * chunks::CHUNK + 1024;
    let emptied = evict(logs.iter(), &held, target);
    assert!(!emptied);
    let sizes: Vec<usize> = logs.iter().map(|l| l.lock().size()).collect();
    assert_eq!(held.load(Ordering::Relaxed), sizes.iter().sum::<usize>());
    assert!(held.load(Ordering::Relaxed) <= target, "{sizes:?}");
    let kept: Vec<Vec<u64>> = logs
        .iter()
        .map(|l| ids(&l.lock().since(BASE).unwrap().messages))
        .collect();
    assert_eq!(kept[2], [BASE + 1, BASE + 2], "the small room keeps all");
    assert!(kept[0].len().abs_diff(kept[1].len()) <= 4, "{kept:?}");
    assert!(kept[0].len() >= 8, "{kept:?}");
    // The oldest went: each large room kept its newest messages.
    assert_eq!(kept[0].last(), Some(&(BASE + 40)));
    assert_eq!(kept[1].last(), Some(&(BASE + 30)));
    assert!(kept[0].windows(2).all(|w| w[1] == w[0] + 1));
    // A target below every room empties them all.
    assert!(evict(logs.iter(), &held, 0));
    assert!(logs.iter().all(|l| l.lock().is_empty()));
    assert_eq!(
        held.load(Ordering::Relaxed),
        logs.iter().map(|l| l.lock().size()).sum::<usize>()
    );
}

#[test]
fn the_level_is_the_largest_that_fits() {
    assert_eq!(level_for(&mut [5, 5, 5], 15), usize::MAX);
    assert_eq!(level_for(&mut [10, 1, 1], 8), 6);
    assert_eq!(level_for(&mut [10, 10, 1], 9), 4);
    assert_eq!(level_for(&mut [3, 3, 3], 0), 0);
    assert_eq!(level_for(&mut [], 0), usize::MAX);
}
