//! Text mode: slash commands parsed from a line, server frames rendered as lines, and the
//! escaping that keeps control characters from reaching a terminal.
//!
//! The server and the `chat` client share the command parser, so a person types the same
//! commands into `nc` and into `chat`.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::frame::{ErrorCode, Frame};
use crate::secret::Password;
use crate::time::format_unix_micros;

/// A parsed text-mode input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/nick NAME`
    Nick(String),
    /// `/join ROOM`
    Join(String),
    /// `/leave [ROOM]` (the current room when omitted)
    Leave(Option<String>),
    /// `/rooms`
    Rooms,
    /// `/who [ROOM]` (the current room when omitted)
    Who(Option<String>),
    /// `/msg NICK TEXT`
    Msg {
        /// Recipient.
        to: String,
        /// Message text.
        text: String,
    },
    /// `/chat NICK` asks for (or accepts) a private chat; `/chat` alone ends it.
    Chat(Option<String>),
    /// `/echo PAYLOAD` (everything after the first space, unchanged)
    Echo(String),
    /// `/history [ROOM] [N]`: the last N messages of a room (the current one when
    /// omitted). A lone number is N.
    History {
        /// The room, if named.
        room: Option<String>,
        /// How many messages, if given.
        count: Option<u32>,
    },
    /// `/login NICK PASSWORD`: the password is the rest of the line after the nick
    /// (it may hold spaces).
    Login {
        /// The account's nick.
        nick: String,
        /// The password; its `Debug` prints `<redacted>`.
        password: Password,
    },
    /// `/stats`
    Stats,
    /// `/help`
    Help,
    /// `/quit`
    Quit,
    /// A plain line: to the private-chat partner if in one, else to the current room.
    /// A line starting with `//` is sent with its first `/` removed.
    Say(String),
}

/// A line that starts with `/` but is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// `UNKNOWN_COMMAND` or `BAD_ARGUMENTS`.
    pub code: ErrorCode,
    /// What to tell the user.
    pub message: String,
}

/// One line per command, shown by `/help`.
pub const HELP: &[&str] = &[
    "/nick NAME       change your nick",
    "/join ROOM       join a room (created if needed); it becomes your current room",
    "/leave [ROOM]    leave a room (default: the current one)",
    "/rooms           list rooms and their member counts",
    "/who [ROOM]      list the members of a room (default: the current one)",
    "/msg NICK TEXT   send a direct message",
    "/chat NICK       ask NICK for a private chat, or accept NICK's request",
    "/chat            end the private chat (or decline requests)",
    "/echo TEXT       echo TEXT back with the server's time",
    "/history [ROOM] [N]  the last N messages of a room (default: current room, 20)",
    "/login NICK PASSWORD  log in to a registered account (its nick becomes yours)",
    "/stats           server statistics",
    "/help            this list",
    "/quit            leave",
    "other lines go to the private chat partner, or else to the current room (//x sends /x)",
];

/// Parses one input line; `Ok(None)` for an empty line.
pub fn parse_command(line: &str) -> Result<Option<Command>, CommandError> {
    if line.is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Command::Say(line.to_owned())));
    };
    if rest.starts_with('/') {
        return Ok(Some(Command::Say(rest.to_owned())));
    }
    let (name, args) = match rest.split_once(' ') {
        Some((name, args)) => (name, args),
        None => (rest, ""),
    };
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = args.split_whitespace().collect();
    let usage = |usage: &str| CommandError {
        code: ErrorCode::BAD_ARGUMENTS,
        message: format!("usage: {usage}"),
    };
    let command = match (name.as_str(), words.as_slice()) {
        ("nick", [nick]) => Command::Nick((*nick).to_owned()),
        ("nick", [_, _, ..]) => return Err(usage("/nick NAME (a nick has no spaces)")),
        ("nick", _) => return Err(usage("/nick NAME")),
        ("join", [room]) => Command::Join((*room).to_owned()),
        ("join", [_, _, ..]) => return Err(usage("/join ROOM (a room name has no spaces)")),
        ("join", _) => return Err(usage("/join ROOM")),
        ("leave", []) => Command::Leave(None),
        ("leave", [room]) => Command::Leave(Some((*room).to_owned())),
        ("leave", _) => return Err(usage("/leave [ROOM]")),
        ("rooms", []) => Command::Rooms,
        ("rooms", _) => return Err(usage("/rooms")),
        ("who", []) => Command::Who(None),
        ("who", [room]) => Command::Who(Some((*room).to_owned())),
        ("who", _) => return Err(usage("/who [ROOM]")),
        ("msg", [to, _, ..]) => {
            let to = (*to).to_owned();
            let text = args
                .trim_start()
                .split_once(char::is_whitespace)
                .map_or("", |(_, t)| t);
            Command::Msg {
                to,
                text: text.trim_start().to_owned(),
            }
        }
        ("msg", _) => return Err(usage("/msg NICK TEXT")),
        ("chat", []) => Command::Chat(None),
        ("chat", [peer]) => Command::Chat(Some((*peer).to_owned())),
        ("chat", _) => return Err(usage("/chat [NICK]")),
        ("echo", _) => Command::Echo(args.to_owned()),
        ("history", []) => Command::History {
            room: None,
            count: None,
        },
        ("history", [one]) => match one.parse::<u32>() {
            Ok(count) => Command::History {
                room: None,
                count: Some(count),
            },
            Err(_) if one.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(usage("/history [ROOM] [N] (N is a number of messages)"));
            }
            Err(_) => Command::History {
                room: Some((*one).to_owned()),
                count: None,
            },
        },
        ("history", [room, n]) => match n.parse::<u32>() {
            Ok(count) => Command::History {
                room: Some((*room).to_owned()),
                count: Some(count),
            },
            Err(_) => return Err(usage("/history [ROOM] [N] (N is a number of messages)")),
        },
        ("history", _) => return Err(usage("/history [ROOM] [N]")),
        ("login", [nick, _, ..]) => {
            let nick = (*nick).to_owned();
            // Everything after the nick and the spaces that follow it: a password may
            // hold spaces of its own.
            let password = args
                .trim_start()
                .split_once(char::is_whitespace)
                .map_or("", |(_, p)| p.trim_start());
            Command::Login {
                nick,
                password: Password::new(password),
            }
        }
        ("login", _) => return Err(usage("/login NICK PASSWORD")),
        ("stats", []) => Command::Stats,
        ("stats", _) => return Err(usage("/stats")),
        ("help", _) => Command::Help,
        ("quit", _) => Command::Quit,
        _ => {
            return Err(CommandError {
                code: ErrorCode::UNKNOWN_COMMAND,
                message: format!("unknown command /{}; /help lists commands", escape(&name)),
            });
        }
    };
    Ok(Some(command))
}

/// Whether `c` must not reach a terminal raw: C0 controls except TAB, DEL, and C1
/// controls (ESC is C0).
pub fn is_dangerous_control(c: char) -> bool {
    (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `s` with every dangerous control character made visible (`\x1b`, `\u{9b}`); borrowed
/// when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_dangerous_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    if !is_dangerous_control(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

/// Appends `frame` as one human-readable line (with `\n`) for a text-mode client.
///
/// Text that came from other users is escaped with [`escape`]; an echo reply's payload is
/// the receiver's own and is returned unchanged. Returns `false`, appending nothing, for
/// frames only a client sends.
pub fn render_line(frame: &Frame, out: &mut BytesMut) -> bool {
    let line: Cow<'_, str> = match frame {
        Frame::Welcome {
            version, nick: me, ..
        } => format!(
            "* welcome, you are {} (protocol {version}); /help lists commands",
            escape(me)
        )
        .into(),
        Frame::NickChanged { old, new } => {
            format!("* {} is now known as {}", escape(old), escape(new)).into()
        }
        Frame::Joined {
            room,
            nick,
            members,
            ..
        } => format!(
            "[{}] * {} joined ({members} {})",
            escape(room),
            escape(nick),
            plural(*members)
        )
        .into(),
        Frame::Left {
            room,
            nick,
            members,
        } => format!(
            "[{}] * {} left ({members} {})",
            escape(room),
            escape(nick),
            plural(*members)
        )
        .into(),
        Frame::RoomList { rooms } => {
            if rooms.is_empty() {
                "* rooms: none".into()
            } else {
                let list: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{} ({})", escape(&r.name), r.members))
                    .collect();
                format!("* rooms: {}", list.join(", ")).into()
            }
        }
        Frame::WhoList { room, nicks } => {
            let list: Vec<Cow<'_, str>> = nicks.iter().map(|n| escape(n)).collect();
            format!("* in {}: {}", escape(room), list.join(" ")).into()
        }
        Frame::RoomMsg {
            room, from, text, ..
        } => format!("[{}] <{}> {}", escape(room), escape(from), escape(text)).into(),
        Frame::HistoryPage { room, count, more } => {
            let older = if *more { "; older ones not shown" } else { "" };
            format!(
                "* history of {}: {count} {}{older}",
                escape(room),
                messages(*count)
            )
            .into()
        }
        Frame::Resumed {
            room,
            replayed,
            missed,
        } => {
            let missed = if *missed > 0 {
                format!("; {missed} no longer kept")
            } else {
                String::new()
            };
            format!(
                "* {}: {replayed} {} replayed{missed}",
                escape(room),
                messages(*replayed)
            )
            .into()
        }
        Frame::DirectMsg { from, text } => {
            format!("[dm] <{}> {}", escape(from), escape(text)).into()
        }
        Frame::ChatMsg { from, text } => {
            format!("[chat] <{}> {}", escape(from), escape(text)).into()
        }
        Frame::ChatRequested { from } => {
            let from = escape(from);
            format!("* {from} asks for a private chat; /chat {from} accepts").into()
        }
        Frame::ChatStarted { peer } => format!(
            "* private chat with {} started; your lines go to them, /chat alone ends it",
            escape(peer)
        )
        .into(),
        Frame::ChatEnded { peer, reason } => format!(
            "* private chat with {} ended: {}",
            escape(peer),
            escape(reason)
        )
        .into(),
        Frame::Busy { peer } => {
            format!("BUSY {} is busy with another private chat", escape(peer)).into()
        }
        Frame::EchoReply {
            server_time_ns,
            payload,
        } => {
            let stamp = format_unix_micros(*server_time_ns);
            out.reserve(stamp.len() + payload.len() + 2);
            out.put_slice(stamp.as_bytes());
            out.put_u8(b':');
            out.put_slice(payload);
            out.put_u8(b'\n');
            return true;
        }
        Frame::Stats { entries } => {
            let list: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}={v}", escape(k)))
                .collect();
            format!("* stats: {}", list.join(" ")).into()
        }
        Frame::Error { code, text } => format!("ERR {} {}", code.0, escape(text)).into(),
        Frame::Shutdown { reason } => format!("* server shutting down: {}", escape(reason)).into(),
        Frame::Notice { text } => format!("* {}", escape(text)).into(),
        Frame::Ping { token } => format!("PING {token}").into(),
        Frame::Pong { token } => format!("PONG {token}").into(),
        Frame::Goodbye { reason } => format!("* goodbye: {}", escape(reason)).into(),
        Frame::Hello { .. }
        | Frame::SetNick { .. }
        | Frame::Join { .. }
        | Frame::Leave { .. }
        | Frame::Say { .. }
        | Frame::Direct { .. }
        | Frame::ChatRequest { .. }
        | Frame::ChatAccept { .. }
        | Frame::ChatEnd
        | Frame::ChatSay { .. }
        | Frame::Echo { .. }
        | Frame::ListRooms
        | Frame::Who { .. }
        | Frame::GetStats
        | Frame::GetHistory { .. }
        | Frame::Login { .. } => return false,
    };
    out.reserve(line.len() + 1);
    out.put_slice(line.as_bytes());
    out.put_u8(b'\n');
    true
}

/// Appends a room message as a history line, with the time it was said:
/// `[ROOM] HH:MM:SS <NICK> TEXT` (UTC). Returns `false`, appending nothing, for other
/// frames.
pub fn render_history_line(frame: &Frame, out: &mut BytesMut) -> bool {
    let Frame::RoomMsg {
        room,
        from,
        time_ns,
        text,
        ..
    } = frame
    else {
        return false;
    };
    let line = format!(
        "[{}] {} <{}> {}\n",
        escape(room),
        clock_time(*time_ns),
        escape(from),
        escape(text)
    );
    out.put_slice(line.as_bytes());
    true
}

/// `HH:MM:SS` (UTC) of a time in nanoseconds since the epoch.
pub fn clock_time(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn messages(count: u32) -> &'static str {
    if count == 1 { "message" } else { "messages" }
}

fn plural(members: u32) -> &'static str {
    if members == 1 { "member" } else { "members" }
}

#[cfg(test)]
mod tests;
