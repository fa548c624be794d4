//! The kernel's scheduling account of the calling thread: how long it has run and how
//! long it has waited, runnable, for a core (`/proc/thread-self/schedstat` on Linux).
//!
//! A worker that waits for a core holds up every connection it owns, so on an
//! overloaded host (or one whose cores are shared with a load generator) that wait,
//! not the server's own work, is what a latency tail is made of. Workers publish it in
//! `/stats` and `/metrics` once a second.

/// Time one thread has run and waited for a core since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadSched {
    /// Nanoseconds on a core.
    pub(crate) run_ns: u64,
    /// Nanoseconds runnable but waiting for a core.
    pub(crate) wait_ns: u64,
}

impl ThreadSched {
    /// The calling thread's account, or `None` where the kernel keeps none (not Linux,
    /// a kernel without scheduler statistics, no `/proc`).
    pub(crate) fn current() -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|text| Self::parse(&text))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    /// Parses `schedstat`: run time (ns), run-queue wait (ns), time slices.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_ascii_whitespace();
        let run_ns = fields.next()?.parse().ok()?;
        let wait_ns = fields.next()?.parse().ok()?;
        Some(Self { run_ns, wait_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_two_fields_are_run_and_wait() {
        assert_eq!(
            ThreadSched::parse("123456 7890 42\n"),
            Some(ThreadSched {
                run_ns: 123_456,
                wait_ns: 7890
            })
        );
    }

    #[test]
    fn anything_else_is_no_account() {
        for text in ["", "12", "12 x 3", "-1 2 3", "1.5 2 3"] {
            assert_eq!(ThreadSched::parse(text), None, "{text:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_that_has_run_has_run_time() {
        if !std::path::Path::new("/proc/thread-self/schedstat").exists() {
            // A kernel without scheduler statistics: nothing to read.
            return;
        }
        // The kernel adds a thread's run time up when it leaves the core (or at a
        // tick): a sleep makes sure this one has.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let account = ThreadSched::current().expect("schedstat parses");
        assert!(account.run_ns > 0);
    }
}
