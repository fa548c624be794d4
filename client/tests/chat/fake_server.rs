//! The client against scripted fake servers.

use std::net::TcpListener;

use bytes::Bytes;
use shared::{ErrorCode, Frame};

use crate::common::{Chat, FakeServer};

const HOSTILE: &str = "\x1b[2J\x1b]0;owned\x07\r\u{9b}31m\x7fend";

fn assert_no_raw_controls(lines: &[String]) {
    for line in lines {
        assert!(
            !line.chars().any(shared::text::is_dangerous_control),
            "raw control character reached stdout: {line:?}"
        );
    }
}

#[test]
fn connection_refused_is_one_line_and_exit_code_3() {
    // A port nobody listens on: bind, note it, close.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let chat = Chat::spawn("refused", addr, &[]);
    let (status, stdout, stderr) = chat.finish();
    assert_eq!(status.code(), Some(3), "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("chat: cannot connect to"), "{stderr:?}");
}

#[test]
fn hostile_text_from_the_server_is_escaped() {
    let fake = FakeServer::start(|mut conn| {
        conn.handshake(&format!("guest{HOSTILE}"));
        conn.recv_until(|f| matches!(f, Frame::Join { .. }));
        conn.send(&Frame::RoomMsg {
            room: "lobby".into(),
            from: format!("mallory{HOSTILE}"),
            id: 1,
            time_ns: 0,
            text: HOSTILE.into(),
        });
        conn.send(&Frame::DirectMsg {
            from: "mallory".into(),
            text: format!("multi\nline{HOSTILE}"),
        });
        conn.send(&Frame::Notice {
            text: HOSTILE.into(),
        });
        conn.send(&Frame::Error {
            code: ErrorCode::NO_SUCH_NICK,
            text: HOSTILE.into(),
        });
        conn.send(&Frame::EchoReply {
            server_time_ns: u64::MAX,
            payload: Bytes::from_static(b"\x1b[31m\xff\xfe"),
        });
        conn.send(&Frame::Shutdown {
            reason: HOSTILE.into(),
        });
    });
    let chat = Chat::spawn("hostile", fake.addr, &["--no-reconnect"]);
    let (status, stdout, stderr) = chat.finish();
    fake.join();
    assert_no_raw_controls(&stdout);
    assert!(
        !stderr
            .chars()
            .any(|c| c != '\n' && shared::text::is_dangerous_control(c)),
        "{stderr:?}"
    );
    let all = stdout.join("\n");
    assert!(all.contains("[lobby] <mallory\\x1b[2J"), "{all}");
    assert!(all.contains("[dm] <mallory> multi\\x0aline"), "{all}");
    assert!(all.contains("\\u{9b}31m\\x7fend"), "{all}");
    assert!(all.contains("echo reply nobody asked for"), "{all}");
    assert_eq!(status.code(), Some(5), "stderr: {stderr}");
    assert!(
        stderr.starts_with("chat: server shut down: \\x1b[2J"),
        "{stderr:?}"
    );
}

#[test]
fn server_ping_is_answered_and_a_sudden_close_exits_4() {
    let fake = FakeServer::start(|mut conn| {
        conn.handshake("guest-1");
        conn.send(&Frame::Ping { token: 77 });
        let pong = conn.recv_until(|f| matches!(f, Frame::Pong { .. }));
        assert_eq!(pong, Frame::Pong { token: 77 });
        // Drop the connection without a word.
    });
    let mut chat = Chat::spawn("ping", fake.addr, &["--no-reconnect"]);
    chat.expect("connected as guest-1");
    fake.join();
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains("connection to the server lost"),
        "{stderr:?}"
    );
}

#[test]
fn version_mismatch_refusal_exits_6() {
    let fake = FakeServer::start(|mut conn| {
        conn.recv().expect("hello");
        conn.send(&Frame::Error {
            code: ErrorCode::VERSION_MISMATCH,
            text: "protocol version 1 is not supported".into(),
        });
    });
    let chat = Chat::spawn("mismatch", fake.addr, &[]);
    let (status, _, stderr) = chat.finish();
    fake.join();
    assert_eq!(status.code(), Some(6), "stderr: {stderr}");
    assert!(stderr.contains("105 version-mismatch"), "{stderr:?}");
}

#[test]
fn a_server_that_is_not_a_chat_server_fails_the_handshake() {
    let fake = FakeServer::start(|mut conn| {
        use std::io::Write;
        conn.stream.write_all(b"SSH-2.0-OpenSSH\r\n").unwrap();
        let _ = conn.recv();
    });
    let chat = Chat::spawn("not-chat", fake.addr, &[]);
    let (status, _, stderr) = chat.finish();
    fake.join();
    assert_eq!(status.code(), Some(3), "stderr: {stderr}");
    assert!(stderr.contains("handshake"), "{stderr:?}");
}

#[test]
fn end_of_input_waits_for_the_echo_reply_then_says_goodbye() {
    let fake = FakeServer::start(|mut conn| {
        conn.handshake("guest-1");
        conn.recv_until(|f| matches!(f, Frame::Join { .. }));
        conn.send(&Frame::Joined {
            room: "lobby".into(),
            nick: "guest-1".into(),
            members: 1,
            last: 0,
        });
        let echo = conn.recv_until(|f| matches!(f, Frame::Echo { .. }));
        // The barrier echo follows once input ended; answer both, in order.
        let barrier = conn.recv_until(|f| matches!(f, Frame::Echo { .. }));
        for frame in [echo, barrier] {
            let Frame::Echo { payload } = frame else {
                unreachable!()
            };
            conn.send(&Frame::EchoReply {
                server_time_ns: shared::time::unix_nanos(),
                payload,
            });
        }
        conn.recv_until(|f| matches!(f, Frame::Goodbye { .. }));
    });
    let mut chat = Chat::spawn("echo", fake.addr, &["--wait", "600"]);
    chat.send("/echo hello world");
    chat.close_stdin();
    let line = chat.expect("echo \"hello world\"");
    assert!(line.contains("sent "), "{line}");
    assert!(line.contains("server "), "{line}");
    assert!(line.contains("received "), "{line}");
    assert!(
        line.contains("round trip") && line.ends_with(" ms"),
        "{line}"
    );
    // With `--wait 600`, exiting within `finish`'s timeout shows the wait ended
    // because every reply was in, not because time ran out.
    let (status, stdout, stderr) = chat.finish();
    fake.join();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr:?}");
    // The barrier's reply is not shown.
    assert!(!stdout.iter().any(|l| l.contains("barrier")), "{stdout:?}");
}

#[test]
fn bad_arguments_exit_2_with_one_line_before_connecting() {
    // Nothing listens on port 9; a usage error must be reported before any connect.
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "127.0.0.1:9",
            &["--nick", "bad nick"],
            "chat: --nick: name contains ' '",
        ),
        (
            "127.0.0.1:9",
            &["--room", ""],
            "chat: --room: name is empty",
        ),
        (
            "127.0.0.1:9",
            &["--frobnicate"],
            "chat: unexpected argument '--frobnicate'",
        ),
        (
            "127.0.0.1:9",
            &["--nick"],
            "chat: a value is required for '--nick",
        ),
        (
            "127.0.0.1:9",
            &["--wait", "soon"],
            "chat: invalid value 'soon' for '--wait",
        ),
        (
            "127.0.0.1:9",
            &["--wait=-1"],
            "chat: --wait must be a non-negative number",
        ),
        (
            "127.0.0.1:9",
            &["--connect-timeout", "0"],
            "chat: --connect-timeout must be a positive number",
        ),
        ("127.0.0.1", &[], "chat: --addr 127.0.0.1: "),
        ("127.0.0.1:99999", &[], "chat: --addr 127.0.0.1:99999: "),
    ];
    for (addr, args, expected) in cases {
        let chat = Chat::spawn_at("usage", addr, args);
        let (status, stdout, stderr) = chat.finish();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr:?}");
    }
}
