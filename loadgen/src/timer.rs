//! A wake-up at an exact time for the send schedule.
//!
//! `epoll_wait` (and so `mio::Poll`) only sleeps in whole milliseconds, rounded up, which
//! would make sends up to a millisecond late and inflate every corrected latency. On
//! Linux a timerfd registered with the thread's poll wakes it at the scheduled
//! microsecond; elsewhere the poll timeout is the only timer and sends may be up to a
//! millisecond late (they are still stamped with their intended time and counted as
//! late when past the threshold).

use std::io;
use std::time::Duration;

use mio::{Registry, Token};

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};

    use mio::unix::SourceFd;
    use mio::{Interest, Registry, Token};
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };

    /// A non-blocking monotonic timerfd.
    #[derive(Debug)]
    pub(super) struct Fd(OwnedFd);

    impl Fd {
        pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
            Ok(Self(fd))
        }

        /// Fires once, `after_ns` (at least 1) from now. Re-arming also clears the
        /// expiry count, so the fd never needs to be read.
        pub(super) fn arm(&self, after_ns: u64) -> io::Result<()> {
            let after_ns = after_ns.max(1);
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: Timespec {
                    tv_sec: (after_ns / 1_000_000_000) as _,
                    tv_nsec: (after_ns % 1_000_000_000) as _,
                },
            };
            timerfd_settime(&self.0, TimerfdTimerFlags::empty(), &spec)?;
            Ok(())
        }
    }
}

/// The send timer of one thread.
#[derive(Debug)]
pub(crate) struct SendTimer {
    #[cfg(target_os = "linux")]
    fd: imp::Fd,
    /// Run-clock time the timer is armed for, `None` when idle or already fired.
    armed_for: Option<u64>,
}

impl SendTimer {
    /// A timer whose expiries arrive as readable events for `token`.
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        #[cfg(not(target_os = "linux"))]
        let _ = (registry, token);
        Ok(Self {
            #[cfg(target_os = "linux")]
            fd: imp::Fd::new(registry, token)?,
            armed_for: None,
        })
    }

    /// Makes sure the thread wakes at `due_ns` (run clock), now being `now_ns`.
    ///
    /// Returns the poll timeout to use for it: `None` when the timerfd takes care of it,
    /// otherwise the time left (which mio rounds up to a whole millisecond).
    pub(crate) fn wake_at(&mut self, due_ns: u64, now_ns: u64) -> io::Result<Option<Duration>> {
        if due_ns <= now_ns {
            return Ok(Some(Duration::ZERO));
        }
        #[cfg(target_os = "linux")]
        {
            if self.armed_for != Some(due_ns) {
                self.fd.arm(due_ns - now_ns)?;
                self.armed_for = Some(due_ns);
            }
            Ok(None)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(Some(Duration::from_nanos(due_ns - now_ns)))
        }
    }

    /// The timer's event arrived: the next `wake_at` must arm it again.
    pub(crate) fn fired(&mut self) {
        self.armed_for = None;
    }
}
