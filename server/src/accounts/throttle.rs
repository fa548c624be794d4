//! [`LoginThrottle`]: failed logins slow further attempts, per account and per source
//! address. After [`FREE_FAILURES`] failures, each attempt must wait 1 s after the last
//! failure, then 2 s, 4 s, ... up to [`MAX_DELAY`]; an attempt inside the wait is
//! refused without running argon2, so guessing costs the server nothing while it is
//! throttled. A record is forgotten [`FORGET_AFTER`] after its last failure, and each
//! table holds at most [`MAX_ENTRIES`] records, the oldest forgotten first.
//!
//! Time is passed in (`now`), so tests drive it without sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures allowed before attempts have to wait.
pub(crate) const FREE_FAILURES: u32 = 3;

/// The longest wait between two attempts.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);

/// A record with no failure for this long is forgotten.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Records each table keeps (accounts; addresses): past it the record created
/// earliest is forgotten. About 100 bytes each, so at most a few MiB together.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Recent failures of one account or address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// When the record was created, in the table's insertion order.
    seq: u64,
}

impl Failures {
    /// How long from `now` the next attempt must wait, if at all.
    fn wait(&self, now: Instant) -> Option<Duration> {
        if self.is_stale(now) || self.count < FREE_FAILURES {
            return None;
        }
        let doublings = (self.count - FREE_FAILURES).min(6);
        let delay = Duration::from_secs(1 << doublings).min(MAX_DELAY);
        let until = self.last + delay;
        (now < until).then(|| until - now)
    }

    fn is_stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= FORGET_AFTER
    }
}

/// Failure records by key, bounded: `order` lists keys by creation so the oldest can
/// be dropped; an entry of `order` whose `seq` no longer matches the record (it was
/// cleared, or cleared and created again) is skipped and compacted away.
#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Failures>,
    order: VecDeque<(K, u64)>,
    next_seq: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(cap: usize) -> Self {
        Self {
            records: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            cap,
        }
    }

    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        self.records.get(key).and_then(|f| f.wait(now))
    }

    fn fail(&mut self, key: &K, now: Instant) {
        if let Some(record) = self.records.get_mut(key) {
            if record.is_stale(now) {
                record.count = 0;
            }
            record.count = record.count.saturating_add(1);
            record.last = now;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.insert(
            key.clone(),
            Failures {
                count: 1,
                last: now,
                seq,
            },
        );
        self.order.push_back((key.clone(), seq));
        while self.records.len() > self.cap {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.records.get(&old).is_some_and(|f| f.seq == old_seq) {
                self.records.remove(&old);
            }
        }
        if self.order.len() > 2 * self.cap + 16 {
            let records = &self.records;
            self.order
                .retain(|(k, s)| records.get(k).is_some_and(|f| f.seq == *s));
        }
    }

    fn clear(&mut self, key: &K) {
        self.records.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len()
    }
}

/// Failed logins by account (case-folded nick) and by source address (IPv6 by /64, so
/// one host cannot get a fresh record per address).
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    accounts: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

impl LoginThrottle {
    /// Tables of at most `cap` records each.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            accounts: Mutex::new(Table::new(cap)),
            addresses: Mutex::new(Table::new(cap)),
        }
    }

    /// `Err(wait)` if a login to `account` from `addr` must wait that much longer.
    pub(crate) fn check(&self, account: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let by_account = self.accounts.lock().wait(&account.to_owned(), now);
        let by_address = self.addresses.lock().wait(&address_key(addr), now);
        match by_account.max(by_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Records a failed login to `account` from `addr`.
    pub(crate) fn failed(&self, account: &str, addr: IpAddr, now: Instant) {
        self.accounts.lock().fail(&account.to_owned(), now);
        self.addresses.lock().fail(&address_key(addr), now);
    }

    /// Records a successful login: the account's failures are forgotten. The address's
    /// are kept, so owning one account does not reset guessing at others.
    pub(crate) fn succeeded(&self, account: &str) {
        self.accounts.lock().clear(&account.to_owned());
    }

    /// Records held (accounts, addresses).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.accounts.lock().len(), self.addresses.lock().len())
    }
}

/// The key of an address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn three_failures_are_free_then_the_wait_doubles_up_to_the_cap() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.check("ann", A, t0), Ok(()));
            t.failed("ann", A, t0);
        }
        assert_eq!(t.check("ann", A, t0), Err(Duration::from_secs(1)));
        // From another address the account still waits; another account from the same
        // address too.
        assert_eq!(t.check("ann", B, t0), Err(Duration::from_secs(1)));
        assert_eq!(t.check("bob", A, t0), Err(Duration::from_secs(1)));
        assert_eq!(t.check("bob", B, t0), Ok(()));
        let mut now = t0;
        for expected in [1, 2, 4, 8, 16, 32, 60, 60] {
            assert_eq!(t.check("ann", A, now), Err(Duration::from_secs(expected)));
            now += Duration::from_secs(expected);
            assert_eq!(t.check("ann", A, now), Ok(()));
            t.failed("ann", A, now);
        }
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed("ann", A, now);
        }
        t.succeeded("ann");
        assert_eq!(t.check("ann", B, now), Ok(()));
        assert!(t.check("ann", A, now).is_err());
    }

    #[test]
    fn records_are_forgotten_after_a_while() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..10 {
            t.failed("ann", A, now);
        }
        assert!(t.check("ann", A, now + MAX_DELAY).is_ok());
        let later = now + FORGET_AFTER;
        assert_eq!(t.check("ann", A, later), Ok(()));
        // A new failure after that starts from one again.
        t.failed("ann", A, later);
        assert_eq!(t.check("ann", A, later), Ok(()));
    }

    #[test]
    fn the_tables_are_bounded_and_forget_the_oldest_first() {
        let t = LoginThrottle::with_capacity(4);
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed("first", A, now);
        }
        for i in 0..100u8 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            t.failed(&format!("n{i}"), addr, now);
            let (accounts, addresses) = t.len();
            assert!(accounts <= 4 && addresses <= 4, "{accounts} {addresses}");
        }
        assert_eq!(t.check("first", B, now), Ok(()), "the oldest was forgotten");
        assert!(t.accounts.lock().order.len() <= 2 * 4 + 16);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(A);
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(A);
        assert_eq!(address_key(one), address_key(two));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(B);
        assert_eq!(address_key(mapped), A);
    }
}
