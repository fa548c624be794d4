//! Unit tests of `text`.

#![allow(clippy::unwrap_used)]

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
                last: 99,
            },
            "[r] * a joined (1 member)",
        ),
        (
            Frame::HistoryPage {
                room: s("r"),
                count: 2,
                more: true,
            },
            "* history of r: 2 messages; older ones not shown",
        ),
        (
            Frame::HistoryPage {
                room: s("r"),
                count: 1,
                more: false,
            },
            "* history of r: 1 message",
        ),
        (
            Frame::Resumed {
                room: s("r"),
                replayed: 3,
                missed: 2,
            },
            "* r: 3 messages replayed; 2 no longer kept",
        ),
        (
            Frame::Resumed {
                room: s("r"),
                replayed: 0,
                missed: 0,
            },
            "* r: 0 messages replayed",
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
                id: 5,
                time_ns: 6,
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
        Frame::Join {
            room: s("r"),
            since: Some(1),
        },
        Frame::GetHistory {
            room: s("r"),
            before: 0,
            limit: 1,
        },
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
fn history_lines_show_the_time_the_nick_and_escaped_text() {
    let mut out = BytesMut::new();
    // 2023-11-14T22:13:20.5Z
    let frame = Frame::RoomMsg {
        room: s("r"),
        from: s("a\u{1b}"),
        id: 1,
        time_ns: 1_700_000_000_500_000_000,
        text: s("hi\u{7}"),
    };
    assert!(render_history_line(&frame, &mut out));
    assert_eq!(&out[..], b"[r] 22:13:20 <a\\x1b> hi\\x07\n");
    assert!(!render_history_line(
        &Frame::Notice { text: s("x") },
        &mut out
    ));
    assert_eq!(clock_time(0), "00:00:00");
    assert_eq!(clock_time(86_399_999_999_999), "23:59:59");
}

#[test]
fn history_commands_take_a_room_a_number_or_both() {
    let parse = |line: &str| parse_command(line).map(Option::unwrap);
    let history = |room: Option<&str>, count: Option<u32>| Command::History {
        room: room.map(str::to_owned),
        count,
    };
    assert_eq!(parse("/history"), Ok(history(None, None)));
    assert_eq!(parse("/history 50"), Ok(history(None, Some(50))));
    assert_eq!(parse("/history den"), Ok(history(Some("den"), None)));
    assert_eq!(parse("/history 42 7"), Ok(history(Some("42"), Some(7))));
    for bad in ["/history den x", "/history a b c", "/history 99999999999"] {
        let err = parse(bad).unwrap_err();
        assert_eq!(err.code, ErrorCode::BAD_ARGUMENTS, "{bad}");
        assert!(err.message.starts_with("usage: /history"), "{bad}");
    }
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
        id: 1,
        time_ns: 2,
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

#[test]
fn login_takes_the_rest_of_the_line_as_the_password_and_never_shows_it() {
    let command = parse_command("/login alice  two words ").unwrap().unwrap();
    assert_eq!(
        command,
        Command::Login {
            nick: "alice".to_owned(),
            password: crate::Password::new("two words "),
        }
    );
    let shown = format!("{command:?}");
    assert!(!shown.contains("two words"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    for line in ["/login", "/login alice", "/login alice   "] {
        let e = parse_command(line).unwrap_err();
        assert_eq!(e.code, ErrorCode::BAD_ARGUMENTS);
        assert_eq!(e.message, "usage: /login NICK PASSWORD");
    }
}
