//! `--start-at`: an RFC 3339 UTC time or a delay, parsed and checked against the
//! clock and the connect ramp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::plain;
use super::{CliError, parse_duration};

/// A `--start-at` value as given: an instant, or a delay from when the command line is
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// RFC 3339 UTC (`2026-12-03T15:00:00Z`, fractions of a second allowed).
    At(SystemTime),
    /// `+5s`: that long after now.
    In(Duration),
}

/// Farthest ahead `--start-at` may lie: the run clock's stamps cover the wait too.
pub const MAX_START_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Headroom asked for on top of the estimated ramp: the coordinator needs a moment to
/// publish the start to every thread.
const START_HEADROOM: Duration = Duration::from_millis(100);

/// Parses `--start-at`: `+DURATION` or an RFC 3339 UTC time
/// (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
pub fn parse_start_at(text: &str) -> Result<StartAt, String> {
    if let Some(delay) = text.strip_prefix('+') {
        return parse_duration(delay).map(StartAt::In);
    }
    parse_rfc3339_utc(text).map(StartAt::At).ok_or_else(|| {
        "expected an RFC 3339 UTC time like 2026-12-03T15:00:00Z or a delay like +5s".into()
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (a `t`, a space or a lower-case `z` are accepted
/// too, as RFC 3339 allows) to a wall-clock instant.
fn parse_rfc3339_utc(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let zone = b.last()?;
    if b.len() < 20 || !matches!(zone, b'Z' | b'z') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let sep = |i: usize, want: &[u8]| want.contains(b.get(i)?).then_some(());
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    sep(13, b":")?;
    sep(16, b":")?;
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month_days = [
        31,
        28 + u64::from(is_leap(y)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d == 0
        || d > month_days[m as usize - 1]
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    let fraction = &text[19..text.len() - 1];
    let nanos = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits)
            if !digits.is_empty()
                && digits.len() <= 9
                && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            format!("{digits:0<9}").parse::<u32>().ok()?
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Days from 1970-01-01 to a proleptic Gregorian date from 1970 on (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The instant a `--start-at` stands for, checked against `now`: not in the past, at
/// most [`MAX_START_LEAD`] ahead, and far enough ahead for `clients` to connect at
/// `connect_rate` (the estimate the ramp takes when nothing is slow).
pub(super) fn start_instant(
    given: &str,
    start: StartAt,
    now: SystemTime,
    clients: u32,
    connect_rate: f64,
) -> Result<SystemTime, CliError> {
    let err = |reason: String| CliError::StartAt {
        given: given.to_owned(),
        reason,
    };
    let at = match start {
        StartAt::At(at) => at,
        StartAt::In(delay) => now + delay,
    };
    let lead = at.duration_since(now).map_err(|past| {
        err(format!(
            "that is {:.3}s in the past",
            past.duration().as_secs_f64()
        ))
    })?;
    if lead > MAX_START_LEAD {
        return Err(err(format!(
            "that is more than {} hours away",
            MAX_START_LEAD.as_secs() / 3600
        )));
    }
    let ramp_s = f64::from(clients) / connect_rate;
    if connect_rate.is_finite()
        && connect_rate > 0.0
        && lead.as_secs_f64() < ramp_s + START_HEADROOM.as_secs_f64()
    {
        return Err(err(format!(
            "that is in {:.3}s, but connecting {clients} clients at --connect-rate {} takes \
             about {ramp_s:.3}s; start later",
            lead.as_secs_f64(),
            plain(connect_rate)
        )));
    }
    Ok(at)
}
