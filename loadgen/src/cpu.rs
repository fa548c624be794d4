//! CPU time used by this process, to report loadgen's own cost per message.
//!
//! Read from `/proc/self/stat` (user plus system time of all threads) in clock ticks of
//! `USER_HZ`, which the kernel ABI fixes at 100 per second on every Linux architecture
//! that matters here. Elsewhere the value is unavailable.

use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat` (the kernel's `USER_HZ`).
const USER_HZ: u64 = 100;

/// CPU time a process used, split into its own code (user) and the kernel's work on its
/// behalf (system: syscalls, and on loopback also the peer's TCP receive processing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time in user space.
    pub user: Duration,
    /// Time in the kernel.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

/// CPU time of this process (all threads) so far, `None` where `/proc` is missing.
pub fn process_cpu_time() -> Option<CpuTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Extracts `utime` and `stime` from the text of a `/proc/PID/stat` file.
pub fn parse_stat(stat: &str) -> Option<CpuTime> {
    // The command name (field 2) is in parentheses and may itself contain spaces and
    // parentheses; fields after the last `)` start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = |t: u64| Duration::from_millis(t * 1000 / USER_HZ);
    Some(CpuTime {
        user: ticks(utime),
        system: ticks(stime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_even_with_odd_command_names() {
        let stat =
            "4242 (load gen) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 2 3";
        let cpu = parse_stat(stat).expect("parses");
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(750));
        assert_eq!(cpu.total(), Duration::from_millis(3250));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_time().is_some());
        }
    }
}
