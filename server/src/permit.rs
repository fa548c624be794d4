//! [`Admission`] and [`Permit`]: the count of open connections as permits released on
//! drop, so no path (a closed connection, a worker that is gone, a shutdown) can leak a
//! place in `--max-connections`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts of admitted connections, shared by the acceptor and the workers.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Connections open (accepted and not yet closed), rejected ones excluded.
    open: AtomicUsize,
    /// Connections accepted while full and not yet answered.
    rejecting: AtomicUsize,
}

impl Admission {
    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Rejected connections waiting to be told.
    pub(crate) fn rejecting(&self) -> usize {
        self.rejecting.load(Ordering::Acquire)
    }

    /// A permit counted as open (`reject == false`) or as being rejected.
    pub(crate) fn admit(self: &Arc<Self>, reject: bool) -> Permit {
        self.counter(reject).fetch_add(1, Ordering::AcqRel);
        Permit {
            admission: Arc::clone(self),
            reject,
        }
    }

    fn counter(&self, reject: bool) -> &AtomicUsize {
        if reject { &self.rejecting } else { &self.open }
    }
}

/// One connection's place in the counts; released when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    admission: Arc<Admission>,
    reject: bool,
}

impl Permit {
    /// Whether this connection was admitted only to be told the server is full.
    pub(crate) fn is_reject(&self) -> bool {
        self.reject
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission
            .counter(self.reject)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_while_alive() {
        let admission = Arc::new(Admission::default());
        let a = admission.admit(false);
        let b = admission.admit(true);
        let c = admission.admit(false);
        assert_eq!((admission.open(), admission.rejecting()), (2, 1));
        assert!(b.is_reject() && !a.is_reject());
        drop(a);
        drop(b);
        assert_eq!((admission.open(), admission.rejecting()), (1, 0));
        // A permit inside a message that is never delivered is released with it.
        let lost = vec![c];
        drop(lost);
        assert_eq!(admission.open(), 0);
    }
}
