//! How received frames and echo timings look on screen.
//!
//! Every string that came from the server goes through [`shared::text::escape`] here, so
//! no control or escape sequence a peer sends ever reaches the terminal raw.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use shared::Frame;
use shared::text::escape;

/// Turns UNIX timestamps into local times of day.
#[derive(Debug, Clone)]
pub struct Clock {
    tz: TimeZone,
}

impl Clock {
    /// The system's time zone (`TZ`, else `/etc/localtime`, else UTC).
    pub fn local() -> Self {
        Clock {
            tz: TimeZone::system(),
        }
    }

    /// UTC, for tests.
    pub fn utc() -> Self {
        Clock { tz: TimeZone::UTC }
    }

    /// `HH:MM:SS.uuuuuu` in this clock's zone for nanoseconds since the UNIX epoch.
    pub fn time_of_day_micros(&self, unix_ns: u64) -> String {
        match Timestamp::from_nanosecond(i128::from(unix_ns)) {
            Ok(ts) => {
                let t = self.tz.to_datetime(ts);
                format!(
                    "{:02}:{:02}:{:02}.{:06}",
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.subsec_nanosecond() / 1_000
                )
            }
            // Out of jiff's range (a peer can send any u64): show the raw number.
            Err(_) => shared::time::format_unix_micros(unix_ns),
        }
    }

    /// `HH:MM:SS` in this clock's zone for nanoseconds since the UNIX epoch.
    pub fn time_of_day(&self, unix_ns: u64) -> String {
        match Timestamp::from_nanosecond(i128::from(unix_ns)) {
            Ok(ts) => {
                let t = self.tz.to_datetime(ts);
                format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
            }
            Err(_) => shared::text::clock_time(unix_ns),
        }
    }

    /// `HH:MM:SS` now, the prefix of every line in interactive mode.
    pub fn now_hms(&self) -> String {
        let t = self.tz.to_datetime(Timestamp::now());
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

/// An opaque payload as text: invalid UTF-8 replaced, control characters escaped.
pub fn payload(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    escape(&text).into_owned()
}

/// The line shown for an echo reply: the three timestamps and the round trip.
pub fn echo_line(
    clock: &Clock,
    payload_bytes: &[u8],
    sent_unix_ns: u64,
    server_unix_ns: u64,
    received_unix_ns: u64,
    round_trip: Duration,
) -> String {
    format!(
        "echo \"{}\": sent {}, server {}, received {}, round trip {:.3} ms",
        payload(payload_bytes),
        clock.time_of_day_micros(sent_unix_ns),
        clock.time_of_day_micros(server_unix_ns),
        clock.time_of_day_micros(received_unix_ns),
        round_trip.as_secs_f64() * 1e3,
    )
}

/// A room message from a history page: `[ROOM] HH:MM:SS <NICK> TEXT`, as
/// [`shared::text::render_history_line`] has it but with the time in `clock`'s zone, like
/// every other time the client shows. Empty for other frames.
pub fn history_line(clock: &Clock, frame: &Frame) -> String {
    let Frame::RoomMsg {
        room,
        from,
        time_ns,
        text,
        ..
    } = frame
    else {
        return String::new();
    };
    format!(
        "[{}] {} <{}> {}",
        escape(room),
        clock.time_of_day(*time_ns),
        escape(from),
        escape(text)
    )
}

/// One line for a frame from the server, without time prefix.
///
/// Lines read as the server's text mode renders them (`shared::text::render_line`),
/// except where a client says it better: the welcome, BUSY, errors, goodbyes, and echo
/// replies, whose full rendering needs session state and is done elsewhere.
pub fn frame_line(frame: &Frame) -> String {
    match frame {
        Frame::Welcome { version, nick, .. } => format!(
            "* connected as {} (protocol {version}); /help lists commands",
            escape(nick)
        ),
        Frame::Busy { peer } => {
            format!("* BUSY: {} is busy with another private chat", escape(peer))
        }
        Frame::EchoReply { payload: p, .. } => format!("* echo: {}", payload(p)),
        Frame::Error { code, text } => format!("! error {code}: {}", escape(text)),
        Frame::Goodbye { reason } => format!("* server said goodbye: {}", escape(reason)),
        Frame::Ping { .. } | Frame::Pong { .. } => String::new(),
        other => {
            let mut line = bytes::BytesMut::new();
            if shared::text::render_line(other, &mut line) {
                String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned()
            } else {
                format!(
                    "! the server sent a client-only frame (type 0x{:02x}); ignored",
                    other.frame_type()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_has_microseconds() {
        let clock = Clock::utc();
        assert_eq!(
            clock.time_of_day_micros(1_700_000_000_123_456_789),
            "22:13:20.123456"
        );
        // A u64 beyond jiff's range must not panic.
        assert!(!clock.time_of_day_micros(u64::MAX).is_empty());
    }

    #[test]
    fn history_line_has_the_time_said_in_the_clocks_zone() {
        let frame = Frame::RoomMsg {
            room: "lobby".into(),
            from: "bob".into(),
            id: 7,
            time_ns: 1_700_000_000_123_456_789,
            text: "hi".into(),
        };
        assert_eq!(
            history_line(&Clock::utc(), &frame),
            "[lobby] 22:13:20 <bob> hi"
        );
        // The same as the shared rendering in UTC.
        let mut shared_line = bytes::BytesMut::new();
        assert!(shared::text::render_history_line(&frame, &mut shared_line));
        assert_eq!(shared_line, "[lobby] 22:13:20 <bob> hi\n");
        assert!(history_line(&Clock::utc(), &Frame::Ping { token: 1 }).is_empty());
    }

    #[test]
    fn echo_line_reads_like_the_original() {
        let line = echo_line(
            &Clock::utc(),
            b"ping\x1b[1m",
            1_700_000_000_000_000_000,
            1_700_000_000_000_250_000,
            1_700_000_000_000_500_000,
            Duration::from_micros(500),
        );
        assert_eq!(
            line,
            "echo \"ping\\x1b[1m\": sent 22:13:20.000000, server 22:13:20.000250, \
             received 22:13:20.000500, round trip 0.500 ms"
        );
    }

    #[test]
    fn every_server_string_is_escaped() {
        let evil = "a\x1b[31mb\r\n\x07\u{9b}c\x7f".to_owned();
        let frames = [
            Frame::Welcome {
                version: 1,
                max_frame: 1,
                nick: evil.clone(),
            },
            Frame::NickChanged {
                old: evil.clone(),
                new: evil.clone(),
            },
            Frame::Joined {
                room: evil.clone(),
                nick: evil.clone(),
                members: 1,
                last: 0,
            },
            Frame::Left {
                room: evil.clone(),
                nick: evil.clone(),
                members: 2,
            },
            Frame::RoomList {
                rooms: vec![shared::RoomInfo {
                    name: evil.clone(),
                    members: 3,
                }],
            },
            Frame::WhoList {
                room: evil.clone(),
                nicks: vec![evil.clone()],
            },
            Frame::RoomMsg {
                room: evil.clone(),
                from: evil.clone(),
                id: 1,
                time_ns: 0,
                text: evil.clone(),
            },
            Frame::HistoryPage {
                room: evil.clone(),
                count: 1,
                more: true,
            },
            Frame::Resumed {
                room: evil.clone(),
                replayed: 1,
                missed: 1,
            },
            Frame::DirectMsg {
                from: evil.clone(),
                text: evil.clone(),
            },
            Frame::ChatMsg {
                from: evil.clone(),
                text: evil.clone(),
            },
            Frame::ChatRequested { from: evil.clone() },
            Frame::ChatStarted { peer: evil.clone() },
            Frame::ChatEnded {
                peer: evil.clone(),
                reason: evil.clone(),
            },
            Frame::Busy { peer: evil.clone() },
            Frame::EchoReply {
                server_time_ns: 0,
                payload: bytes::Bytes::from(evil.clone()),
            },
            Frame::Stats {
                entries: vec![(evil.clone(), 1)],
            },
            Frame::Error {
                code: shared::ErrorCode(299),
                text: evil.clone(),
            },
            Frame::Shutdown {
                reason: evil.clone(),
            },
            Frame::Notice { text: evil.clone() },
            Frame::Goodbye {
                reason: evil.clone(),
            },
        ];
        let history = history_line(
            &Clock::utc(),
            &Frame::RoomMsg {
                room: evil.clone(),
                from: evil.clone(),
                id: 1,
                time_ns: 0,
                text: evil.clone(),
            },
        );
        assert!(!history.chars().any(shared::text::is_dangerous_control));
        for frame in &frames {
            let line = frame_line(frame);
            assert!(
                !line.chars().any(shared::text::is_dangerous_control),
                "{frame:?} -> {line:?}"
            );
            assert!(line.contains("\\x1b[31m"), "{frame:?} -> {line:?}");
        }
    }
}
