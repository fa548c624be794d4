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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_six_digits_truncated() {
        assert_eq!(format_unix_micros(0), "0.000000");
        assert_eq!(format_unix_micros(999), "0.000000");
        assert_eq!(format_unix_micros(1_000), "0.000001");
        assert_eq!(
            format_unix_micros(1_700_000_000_123_456_789),
            "1700000000.123456"
        );
        assert_eq!(format_unix_micros(u64::MAX), "18446744073.709551");
    }

    #[test]
    fn unix_nanos_is_after_2020() {
        // 2020-01-01T00:00:00Z: a clock this test runs under is later.
        assert!(unix_nanos() > 1_577_836_800_000_000_000);
    }
}
