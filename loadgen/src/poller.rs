//! Where a load thread sleeps: its sockets' readiness, or the next send time, whichever
//! comes first.
//!
//! Sockets are registered with a `mio::Poll` as usual ([`Poller::registry`]), but on
//! Linux the thread waits on that poll's epoll descriptor itself with `epoll_pwait2`,
//! whose timeout is in nanoseconds: `epoll_wait` (and so `mio::Poll::poll`) only sleeps
//! in whole milliseconds, rounded up, which would make sends up to a millisecond late
//! and inflate every corrected latency. One system call per wake-up, with no timer to
//! re-arm. Elsewhere (and on a Linux older than 5.11) the thread sleeps in
//! `mio::Poll::poll`, whose timeout is rounded up to a whole millisecond, so sends may be
//! up to a millisecond late (they are still stamped with their intended time and counted
//! as late when past the threshold).
//!
//! Either way a wake-up yields [`Readiness`] records, the same facts about a socket that
//! `mio::event::Event` reports.

use std::io;

use mio::{Poll, Registry, Token};

/// What the poll reported about one registered socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The token the socket was registered with.
    pub token: Token,
    /// Data (or an out-of-band priority byte) can be read.
    pub readable: bool,
    /// The socket takes more bytes.
    pub writable: bool,
    /// The peer will send nothing more (FIN, or both halves closed).
    pub read_closed: bool,
    /// Nothing more can be written (both halves closed, or an error on a writable
    /// socket).
    pub write_closed: bool,
    /// The socket has a pending error.
    pub error: bool,
}

#[cfg(target_os = "linux")]
impl Readiness {
    /// The readiness in one epoll event: `flags` its event bits, `data` the token mio
    /// registered the socket with. The same mapping as mio's own epoll selector, so a
    /// client sees exactly what `mio::event::Event` would have told it.
    fn from_epoll(flags: rustix::event::epoll::EventFlags, data: u64) -> Self {
        use rustix::event::epoll::EventFlags as F;
        let has = |f: F| flags.contains(f);
        Self {
            // mio registers sockets with their index as a `usize`, widened to `u64`.
            token: Token(data as usize),
            readable: has(F::IN) || has(F::PRI),
            writable: has(F::OUT),
            read_closed: has(F::HUP) || (has(F::IN) && has(F::RDHUP)),
            // The last case is a pipe whose read end closed: mio reports it as
            // write-closed, and so do we.
            write_closed: has(F::HUP) || (has(F::OUT) && has(F::ERR)) || flags == F::ERR,
            error: has(F::ERR),
        }
    }
}

impl Readiness {
    /// The readiness in one mio event.
    fn from_mio(event: &mio::event::Event) -> Self {
        Self {
            token: event.token(),
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
        }
    }
}

/// One thread's poll and the buffers a wake-up fills.
pub(crate) struct Poller {
    poll: Poll,
    /// The kernel's events of the last exact wake-up; its capacity is the most taken per
    /// wake-up (the rest wait for the next one, as with mio).
    #[cfg(target_os = "linux")]
    raw: Vec<rustix::event::epoll::Event>,
    /// Whether `epoll_pwait2` is available, found by one probe when the poller is made:
    /// a kernel older than 5.11 lacks it (ENOSYS) and some container seccomp profiles
    /// refuse it (EPERM); the thread then sleeps in whole milliseconds like everywhere
    /// else.
    #[cfg(target_os = "linux")]
    exact: bool,
    /// mio's events of the last millisecond wake-up.
    events: mio::Events,
    /// What the last wake-up reported, reused from one wake-up to the next.
    ready: Vec<Readiness>,
}

impl Poller {
    /// A poll that reports at most `capacity` (at least 1) sockets per wake-up.
    pub(crate) fn new(capacity: usize) -> io::Result<Self> {
        let capacity = capacity.max(1);
        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut poller = Self {
            poll: Poll::new()?,
            #[cfg(target_os = "linux")]
            raw: Vec::with_capacity(capacity),
            #[cfg(target_os = "linux")]
            exact: true,
            events: mio::Events::with_capacity(capacity),
            ready: Vec::with_capacity(capacity),
        };
        #[cfg(target_os = "linux")]
        {
            // A sleep of zero on the still empty poll: whether the exact wait works is
            // known before the run, never found out in the middle of it.
            match poller.wait_exact(0) {
                Ok(()) | Err(rustix::io::Errno::INTR) => {}
                Err(e) if Self::unavailable(e) => poller.exact = false,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(poller)
    }

    /// Whether `errno` from `epoll_pwait2` means the call is not available here (rather
    /// than that the wait failed).
    #[cfg(target_os = "linux")]
    fn unavailable(errno: rustix::io::Errno) -> bool {
        use rustix::io::Errno;
        errno == Errno::NOSYS || errno == Errno::PERM || errno == Errno::NOTSUP
    }

    /// Where sockets are registered, with their client's index as the token.
    pub(crate) fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Sleeps until a registered socket is ready or `timeout_ns` have passed, then
    /// leaves what was reported in [`Poller::ready`]. A signal ending the sleep early is
    /// a wake-up with nothing ready.
    pub(crate) fn wait(&mut self, timeout_ns: u64) -> io::Result<()> {
        self.ready.clear();
        #[cfg(target_os = "linux")]
        if self.exact {
            match self.wait_exact(early(timeout_ns)) {
                Err(rustix::io::Errno::INTR) => return Ok(()),
                Err(e) if Self::unavailable(e) => self.exact = false,
                other => return other.map_err(io::Error::from),
            }
        }
        self.wait_coarse(timeout_ns)
    }

    /// `epoll_pwait2` on mio's epoll descriptor, with the timeout to the nanosecond.
    #[cfg(target_os = "linux")]
    fn wait_exact(&mut self, timeout_ns: u64) -> rustix::io::Result<()> {
        use rustix::buffer::spare_capacity;
        use rustix::event::{Timespec, epoll};
        let timeout = Timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as _,
            tv_nsec: (timeout_ns % 1_000_000_000) as _,
        };
        self.raw.clear();
        // `Registry` lends out mio's epoll descriptor; `Poll::poll` waits on the same one,
        // only with a millisecond timeout.
        epoll::wait(
            self.poll.registry(),
            spare_capacity(&mut self.raw),
            Some(&timeout),
        )?;
        self.ready.extend(
            self.raw
                .iter()
                .map(|e| Readiness::from_epoll(e.flags, e.data.u64())),
        );
        Ok(())
    }

    /// `mio::Poll::poll`, which rounds the timeout up to a whole millisecond.
    fn wait_coarse(&mut self, timeout_ns: u64) -> io::Result<()> {
        let timeout = std::time::Duration::from_nanos(timeout_ns);
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ready
            .extend(self.events.iter().map(Readiness::from_mio));
        Ok(())
    }

    /// What the last [`Poller::wait`] reported.
    pub(crate) fn ready(&self) -> &[Readiness] {
        &self.ready
    }
}

/// The part of a sleep of `timeout_ns` to ask the kernel for.
///
/// The kernel lets a timed sleep end late by its thread's timer slack or by 0.1 % of the
/// timeout (0.5 % for a niced process), whichever is larger: 50 us on a 10 ms sleep,
/// whatever [`TIMER_SLACK_NS`] says. So sleeps of a millisecond or more ask for 0.5 %
/// less; the thread wakes that much early, finds nothing due yet, and sleeps the short
/// rest, whose slack is the thread's own.
#[cfg(target_os = "linux")]
fn early(timeout_ns: u64) -> u64 {
    if timeout_ns >= 1_000_000 {
        timeout_ns - timeout_ns / 200
    } else {
        timeout_ns
    }
}

/// Timer slack of a load thread (ns): how late the kernel may end its timed sleeps.
///
/// The default slack of a normal thread is 50 us, and `epoll_pwait2` honours it, so with
/// `--send-window 0` every send would leave up to 50 us after its time: on a 2-core VM the
/// median lag between a send's intended and actual time was about 80 us with the default
/// and 35 us with 1 us. A tighter slack wakes the thread for each send rather than for
/// a few at once, which costs some CPU per message at 1000 x 50/s (about 8 %); a wider
/// `--send-window` is the way to trade precision for CPU, stated in the run's results.
const TIMER_SLACK_NS: u64 = 1_000;

/// Lets the calling thread's timed sleeps end within [`TIMER_SLACK_NS`] of their
/// deadline instead of the default 50 us, so a send wakes its thread at its time.
/// Elsewhere than on Linux sleeps are whole milliseconds anyway, and this does nothing.
pub(crate) fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        // Best effort: on failure the thread keeps the default slack and sends are a
        // little later, which the send-lag figures show.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(TIMER_SLACK_NS));
    }
}

#[cfg(test)]
mod tests;
