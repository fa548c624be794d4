//! The verdict on a finished connection: did the server treat it as its kind deserves.

use shared::ErrorCode;

use super::{Conn, End};
use crate::kind::Kind;

/// Whether a finished connection got what its kind should get: `Some(true)` yes,
/// `Some(false)` no (the server misbehaved), `None` undecided (cut short, or no
/// expectation).
pub(super) fn judge(conn: &Conn, end: End) -> Option<bool> {
    let server_closed = matches!(end, End::ServerClosed { .. });
    // A server that is shutting down may end anything; that is not the client's story.
    if conn.shutdown_seen {
        return None;
    }
    match conn.kind {
        Kind::Oversize | Kind::BadUtf8Line | Kind::BadUtf8Frame => {
            let expected = conn.kind.expected_code().map(|c| c.0);
            match end {
                End::Deadline => None,
                _ => Some(
                    server_closed
                        && conn.codes.len() == 1
                        && conn.codes.first().copied() == expected,
                ),
            }
        }
        Kind::Garbage => match end {
            // Only a protocol error code may come back before the server closes;
            // garbage lines that happen to parse may also draw 2xx refusals.
            End::ServerClosed { .. } => Some(
                conn.codes
                    .iter()
                    .any(|&c| ErrorCode(c).closes_connection() && c < 300),
            ),
            End::Unanswered => None,
            _ => None,
        },
        Kind::Torn => match end {
            End::WeClosed => Some(conn.welcomed && conn.codes.is_empty()),
            End::Deadline => None,
            _ => Some(false),
        },
        Kind::Instant => match end {
            // Still held when the run ended: it never got to misbehave.
            End::Deadline => None,
            _ => Some(end == End::WeClosed),
        },
        Kind::Stalled => Some(
            server_closed
                && conn.welcomed
                && conn.codes.len() == 1
                && conn.codes.first().copied() == conn.kind.expected_code().map(|c| c.0),
        ),
        Kind::Slowloris | Kind::Flooder | Kind::Talker | Kind::Partial => match end {
            // A flooder is told (error 209, the connection stays open) when the rate limit
            // starts holding it back; nothing else may come.
            End::Deadline => Some(
                conn.codes
                    .iter()
                    .all(|&c| conn.kind == Kind::Flooder && c == ErrorCode::RATE_LIMITED.0)
                    && (conn.kind != Kind::Slowloris || conn.requests <= conn.replies + 1),
            ),
            _ => Some(false),
        },
        // One reconnected shortly before the end may not have been closed yet.
        Kind::NonReader => match end {
            End::Deadline => None,
            _ => Some(server_closed),
        },
        Kind::Idle => Some(conn.final_ok && conn.codes.is_empty()),
        Kind::RoomHolder => Some(
            end == End::Deadline
                && conn.welcomed
                && conn.codes.is_empty()
                && conn.replies == conn.requests,
        ),
    }
}
