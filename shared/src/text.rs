//! Text mode: slash commands parsed from a line, server frames rendered as lines, and the
//! escaping that keeps control characters from reaching a terminal.
//!
//! The server and the `chat` client share the command parser, so a person types the same
//! commands into `nc` and into `chat`.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::frame::{ErrorCode, Frame};
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
        Frame::RoomMsg { room, from, text } => {
            format!("[{}] <{}> {}", escape(room), escape(from), escape(text)).into()
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
        | Frame::GetStats => return false,
    };
    out.reserve(line.len() + 1);
    out.put_slice(line.as_bytes());
    out.put_u8(b'\n');
    true
}

fn plural(members: u32) -> &'static str {
    if members == 1 { "member" } else { "members" }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::frame::RoomInfo;

    fn parse(line: &str) -> Command {
        parse_command(line).unwrap().unwrap()
    }

    fn bad(line: &str) -> CommandError {
        parse_command(line).unwrap_err()
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(parse("/nick alice"), Command::Nick(s("alice")));
        assert_eq!(parse("/join rust"), Command::Join(s("rust")));
        assert_eq!(parse("/leave"), Command::Leave(None));
        assert_eq!(parse("/leave rust"), Command::Leave(Some(s("rust"))));
        assert_eq!(parse("/rooms"), Command::Rooms);
        assert_eq!(parse("/who"), Command::Who(None));
        assert_eq!(parse("/who rust"), Command::Who(Some(s("rust"))));
        assert_eq!(
            parse("/msg bob hello there"),
            Command::Msg {
                to: s("bob"),
                text: s("hello there")
            }
        );
        assert_eq!(parse("/chat bob"), Command::Chat(Some(s("bob"))));
        assert_eq!(parse("/chat"), Command::Chat(None));
        assert_eq!(parse("/echo 123"), Command::Echo(s("123")));
        assert_eq!(parse("/stats"), Command::Stats);
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/quit"), Command::Quit);
    }

    #[test]
    fn command_names_ignore_case_and_extra_spaces_between_arguments() {
        assert_eq!(parse("/NICK alice"), Command::Nick(s("alice")));
        assert_eq!(parse("/Join  rust "), Command::Join(s("rust")));
        assert_eq!(parse("/who\u{20}\trust"), Command::Who(Some(s("rust"))));
        // The name ends at the first space only.
        assert_eq!(bad("/join\trust").code, ErrorCode::UNKNOWN_COMMAND);
    }

    #[test]
    fn help_and_quit_ignore_arguments() {
        assert_eq!(parse("/help me"), Command::Help);
        assert_eq!(parse("/quit see you"), Command::Quit);
    }

    #[test]
    fn plain_lines_empty_lines_and_double_slash() {
        assert_eq!(parse_command(""), Ok(None));
        assert_eq!(parse("hello"), Command::Say(s("hello")));
        assert_eq!(parse(" /nick x"), Command::Say(s(" /nick x")));
        assert_eq!(parse("//nick x"), Command::Say(s("/nick x")));
        assert_eq!(parse("//"), Command::Say(s("/")));
        assert_eq!(parse("///"), Command::Say(s("//")));
        assert_eq!(parse(" "), Command::Say(s(" ")));
    }

    #[test]
    fn msg_text_keeps_inner_and_trailing_whitespace() {
        assert_eq!(
            parse("/msg  bob \t hello  world "),
            Command::Msg {
                to: s("bob"),
                text: s("hello  world ")
            }
        );
        assert_eq!(
            parse("/msg bob\tx"),
            Command::Msg {
                to: s("bob"),
                text: s("x")
            }
        );
    }

    #[test]
    fn echo_payload_is_everything_after_the_first_space() {
        assert_eq!(parse("/echo"), Command::Echo(s("")));
        assert_eq!(parse("/echo "), Command::Echo(s("")));
        assert_eq!(
            parse("/echo  two  spaces "),
            Command::Echo(s(" two  spaces "))
        );
        assert_eq!(parse("/ECHO a:b"), Command::Echo(s("a:b")));
    }

    #[test]
    fn bad_arguments_give_usage() {
        for (line, usage) in [
            ("/nick", "usage: /nick NAME"),
            ("/nick a b", "usage: /nick NAME (a nick has no spaces)"),
            ("/join", "usage: /join ROOM"),
            ("/join a b", "usage: /join ROOM (a room name has no spaces)"),
            ("/leave a b", "usage: /leave [ROOM]"),
            ("/rooms x", "usage: /rooms"),
            ("/who a b", "usage: /who [ROOM]"),
            ("/msg", "usage: /msg NICK TEXT"),
            ("/msg bob", "usage: /msg NICK TEXT"),
            ("/msg bob   ", "usage: /msg NICK TEXT"),
            ("/chat a b", "usage: /chat [NICK]"),
            ("/stats now", "usage: /stats"),
        ] {
            let err = bad(line);
            assert_eq!(err.code, ErrorCode::BAD_ARGUMENTS, "{line}");
            assert_eq!(err.message, usage, "{line}");
            assert_eq!(err.to_string(), usage);
        }
    }

    #[test]
    fn unknown_commands() {
        let err = bad("/dance now");
        assert_eq!(err.code, ErrorCode::UNKNOWN_COMMAND);
        assert_eq!(err.message, "unknown command /dance; /help lists commands");
        assert_eq!(bad("/").message, "unknown command /; /help lists commands");
        assert_eq!(bad("/ x").code, ErrorCode::UNKNOWN_COMMAND);
        // The echoed name cannot carry a terminal escape.
        let err = bad("/\u{1b}[2J");
        assert_eq!(
            err.message,
            "unknown command /\\x1b[2j; /help lists commands"
        );
    }

    #[test]
    fn help_lists_every_command() {
        for name in [
            "nick", "join", "leave", "rooms", "who", "msg", "chat", "echo", "stats", "help", "quit",
        ] {
            let prefix = format!("/{name} ");
            assert!(HELP.iter().any(|l| l.starts_with(&prefix)), "{name}");
        }
    }

    fn render(frame: &Frame) -> String {
        let mut out = BytesMut::new();
        assert!(render_line(frame, &mut out), "{frame:?}");
        let line = String::from_utf8(out.to_vec()).unwrap();
        let body = line.strip_suffix('\n').unwrap();
        assert!(!body.contains('\n'), "one line: {line:?}");
        body.to_owned()
    }

    #[test]
    fn every_server_frame_renders_as_one_line() {
        let cases = [
            (Frame::Ping { token: 1 }, "PING 1"),
            (Frame::Pong { token: 2 }, "PONG 2"),
            (Frame::Goodbye { reason: s("bye") }, "* goodbye: bye"),
            (
                Frame::Welcome {
                    version: 1,
                    max_frame: 10,
                    nick: s("guest-7"),
                },
                "* welcome, you are guest-7 (protocol 1); /help lists commands",
            ),
            (
                Frame::NickChanged {
                    old: s("a"),
                    new: s("b"),
                },
                "* a is now known as b",
            ),
            (
                Frame::Joined {
                    room: s("r"),
                    nick: s("a"),
                    members: 1,
                },
                "[r] * a joined (1 member)",
            ),
            (
                Frame::Left {
                    room: s("r"),
                    nick: s("a"),
                    members: 0,
                },
                "[r] * a left (0 members)",
            ),
            (Frame::RoomList { rooms: vec![] }, "* rooms: none"),
            (
                Frame::RoomList {
                    rooms: vec![RoomInfo {
                        name: s("r"),
                        members: 3,
                    }],
                },
                "* rooms: r (3)",
            ),
            (
                Frame::WhoList {
                    room: s("r"),
                    nicks: vec![s("a"), s("b")],
                },
                "* in r: a b",
            ),
            (
                Frame::RoomMsg {
                    room: s("r"),
                    from: s("a"),
                    text: s("hi there"),
                },
                "[r] <a> hi there",
            ),
            (
                Frame::DirectMsg {
                    from: s("a"),
                    text: s("psst"),
                },
                "[dm] <a> psst",
            ),
            (
                Frame::ChatRequested { from: s("a") },
                "* a asks for a private chat; /chat a accepts",
            ),
            (
                Frame::ChatStarted { peer: s("b") },
                "* private chat with b started; your lines go to them, /chat alone ends it",
            ),
            (
                Frame::ChatEnded {
                    peer: s("b"),
                    reason: s("gone"),
                },
                "* private chat with b ended: gone",
            ),
            (
                Frame::Busy { peer: s("c") },
                "BUSY c is busy with another private chat",
            ),
            (
                Frame::ChatMsg {
                    from: s("a"),
                    text: s("yo"),
                },
                "[chat] <a> yo",
            ),
            (
                Frame::EchoReply {
                    server_time_ns: 1_000_000_999,
                    payload: Bytes::from_static(b"p"),
                },
                "1.000000:p",
            ),
            (
                Frame::Stats {
                    entries: vec![(s("a"), 1), (s("b"), 2)],
                },
                "* stats: a=1 b=2",
            ),
            (
                Frame::Error {
                    code: ErrorCode::NICK_TAKEN,
                    text: s("nick alice is taken"),
                },
                "ERR 202 nick alice is taken",
            ),
            (
                Frame::Shutdown {
                    reason: s("maintenance"),
                },
                "* server shutting down: maintenance",
            ),
            (Frame::Notice { text: s("note") }, "* note"),
        ];
        for (frame, line) in cases {
            assert!(frame.is_server_frame());
            assert_eq!(render(&frame), line);
        }
    }

    #[test]
    fn client_only_frames_do_not_render() {
        let mut out = BytesMut::from(&b"kept"[..]);
        for frame in [
            Frame::Hello { version: 1 },
            Frame::SetNick { nick: s("a") },
            Frame::Join { room: s("r") },
            Frame::Leave { room: s("r") },
            Frame::Say {
                room: s("r"),
                text: s("t"),
            },
            Frame::Direct {
                to: s("a"),
                text: s("t"),
            },
            Frame::ChatRequest { peer: s("a") },
            Frame::ChatAccept { peer: s("a") },
            Frame::ChatEnd,
            Frame::ChatSay { text: s("t") },
            Frame::Echo {
                payload: Bytes::new(),
            },
            Frame::ListRooms,
            Frame::Who { room: s("r") },
            Frame::GetStats,
        ] {
            assert!(!frame.is_server_frame());
            assert!(!render_line(&frame, &mut out), "{frame:?}");
        }
        assert_eq!(&out[..], b"kept");
    }

    #[test]
    fn render_appends_to_the_buffer() {
        let mut out = BytesMut::new();
        assert!(render_line(&Frame::Notice { text: s("a") }, &mut out));
        assert!(render_line(&Frame::Ping { token: 3 }, &mut out));
        assert_eq!(&out[..], b"* a\nPING 3\n");
    }

    #[test]
    fn text_from_users_is_escaped_when_rendered() {
        let line = render(&Frame::RoomMsg {
            room: s("r\u{1b}"),
            from: s("ev\u{9b}il"),
            text: s("\u{1b}[2Jgone\nfake line\r\u{7f}\tok"),
        });
        assert_eq!(
            line,
            "[r\\x1b] <ev\\u{9b}il> \\x1b[2Jgone\\x0afake line\\x0d\\x7f\tok"
        );
        let line = render(&Frame::Error {
            code: ErrorCode::MALFORMED,
            text: s("\u{0}"),
        });
        assert_eq!(line, "ERR 100 \\x00");
        let line = render(&Frame::WhoList {
            room: s("r"),
            nicks: vec![s("a\u{85}")],
        });
        assert_eq!(line, "* in r: a\\u{85}");
    }

    #[test]
    fn echo_reply_payload_is_byte_for_byte() {
        let mut out = BytesMut::new();
        let frame = Frame::EchoReply {
            server_time_ns: 1_700_000_000_999_999_999,
            payload: Bytes::from_static(b"\x1b\xff:x"),
        };
        assert!(render_line(&frame, &mut out));
        assert_eq!(&out[..], b"1700000000.999999:\x1b\xff:x\n");
    }

    #[test]
    fn escape_makes_dangerous_controls_visible() {
        assert_eq!(escape("\u{1b}[31m"), "\\x1b[31m"); // ESC
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m"); // C1 CSI
        assert_eq!(escape("\u{80}\u{9f}"), "\\u{80}\\u{9f}"); // C1 bounds
        assert_eq!(escape("\u{7f}"), "\\x7f"); // DEL
        assert_eq!(escape("\0"), "\\x00"); // NUL
        assert_eq!(escape("a\tb"), "a\tb"); // TAB kept
        assert_eq!(escape("\r\n"), "\\x0d\\x0a");
        assert_eq!(escape("\u{1f}"), "\\x1f");
        assert_eq!(escape("é😀\u{a0}\\x1b"), "é😀\u{a0}\\x1b");
    }

    #[test]
    fn escape_borrows_clean_text() {
        assert!(matches!(escape("plain text\twith tab é"), Cow::Borrowed(_)));
        assert!(matches!(escape("\u{7}"), Cow::Owned(_)));
    }

    #[test]
    fn dangerous_controls_are_exactly_c0_but_tab_del_and_c1() {
        for code in 0u32..=0x3000 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let expected = (code < 0x20 && code != 0x09) || (0x7f..=0x9f).contains(&code);
            assert_eq!(is_dangerous_control(c), expected, "U+{code:04X}");
        }
    }
}
