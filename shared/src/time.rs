//! Wall-clock timestamps as carried in echo replies.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the UNIX epoch (0 if the clock is set before 1970).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Formats nanoseconds since the epoch as `SECONDS.MICROS` (six decimals), the server
/// time in a text-mode echo reply.
pub fn format_unix_micros(nanos: u64) -> String {
    format!(
        "{}.{:06}",
        nanos / 1_000_000_000,
        (nanos % 1_000_000_000) / 1_000
    )
}
