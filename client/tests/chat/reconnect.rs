//! Reconnecting against the real server: a network blip through a proxy, a server
//! restart on the same port, a hand-over between two servers sharing the port, and
//! `--no-reconnect`.

use shared::{ErrorCode, Frame};

use crate::common::{Chat, FakeServer, Proxy, TestServer};

/// The texts of `from`'s lines in `room`, in the order printed.
fn said<'a>(lines: &'a [String], room: &str, from: &str) -> Vec<&'a str> {
    let prefix = format!("[{room}] <{from}> ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line containing {needle:?}: {lines:#?}"))
}

#[test]
fn a_blip_is_bridged_with_every_message_once_and_in_order() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr);
    let mut reader = Chat::spawn("reader", proxy.addr, &["--nick", "reader"]);
    reader.expect("[lobby] * reader joined");
    let mut writer = Chat::spawn("writer", server.addr, &["--nick", "writer"]);
    writer.expect("[lobby] * writer joined");
    for i in 1..=20 {
        writer.send(&format!("m{i}"));
    }
    reader.expect("<writer> m20");

    proxy.pause();
    proxy.cut();
    reader.expect("connection lost");
    // Said while the reader is away: the server has them once the writer sees them.
    for i in 21..=40 {
        writer.send(&format!("m{i}"));
    }
    writer.expect("<writer> m40");
    // At least one attempt meets the closed door before it opens again.
    reader.expect("attempt 1 failed: ");
    proxy.resume();
    // And more while it comes back: replayed or live, never both.
    for i in 41..=60 {
        writer.send(&format!("m{i}"));
    }
    reader.expect("reconnected, ");
    reader.expect_seen("<writer> m60");
    reader.send("/who");
    reader.expect("* in lobby: ");
    let (status, stdout, stderr) = reader.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");

    let expected: Vec<String> = (1..=60).map(|i| format!("m{i}")).collect();
    assert_eq!(said(&stdout, "lobby", "writer"), expected, "{stdout:#?}");
    // N is the number of messages shown between the loss and the reconnect: the replay.
    let lost = position(&stdout, "connection lost");
    let back = position(&stdout, "* reconnected, ");
    let replayed = said(&stdout[lost..back], "lobby", "writer").len();
    let n: usize = stdout[back]
        .strip_prefix("* reconnected, ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {:?}", stdout[back]));
    assert_eq!(n, replayed, "{stdout:#?}");
    // m21..m40 could only come back through the replay.
    assert!(n >= 20, "{stdout:#?}");
    let resumed = position(&stdout, "* lobby: ");
    assert!(
        stdout[resumed].starts_with(&format!("* lobby: {n} messages replayed")),
        "{stdout:#?}"
    );
    assert!(lost < resumed && resumed < back, "{stdout:#?}");
}

#[test]
fn after_a_server_restart_history_is_not_available_and_the_session_goes_on() {
    let mut server = TestServer::start();
    let addr = server.addr;
    let mut chat = Chat::spawn("survivor", addr, &["--nick", "survivor"]);
    chat.expect("[lobby] * survivor joined");
    chat.send("before");
    chat.expect("[lobby] <survivor> before");

    server.stop();
    chat.expect("server shutting down");
    chat.expect("reconnecting in");
    let _restarted = TestServer::start_on(addr, false);
    chat.expect("lobby: history not available");
    let line = chat.expect("* reconnected, ");
    assert_eq!(
        line,
        "* reconnected, 0 messages replayed; history not available for lobby"
    );

    let mut other = Chat::spawn("other", addr, &["--nick", "other"]);
    other.expect("[lobby] * other joined");
    chat.expect("[lobby] * other joined");
    chat.send("after");
    other.expect("[lobby] <survivor> after");
    chat.expect("[lobby] <survivor> after");
    let (status, stdout, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr:?}");
    // The nick was free on the new server: the status line names it at once.
    let again = position(&stdout, "connected again as");
    assert!(
        stdout[again].contains("taking back nick survivor"),
        "{stdout:#?}"
    );
    assert!(stdout.iter().any(|l| l == "* took back nick survivor"));
}

#[test]
fn a_nick_still_held_by_the_old_connection_is_taken_back_once_free() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr);
    let mut chat = Chat::spawn("keeper", proxy.addr, &["--nick", "keeper"]);
    chat.expect("[lobby] * keeper joined");
    let mut watcher = Chat::spawn("watcher", server.addr, &["--nick", "watcher"]);
    watcher.expect("[lobby] * watcher joined");
    chat.expect("[lobby] * watcher joined");

    // The client's link dies; the server still holds the old connection and its nick.
    proxy.cut_client_side();
    chat.expect("connection lost");
    chat.expect("nick keeper is still held");
    let line = chat.expect("* reconnected, ");
    assert!(
        line.ends_with("; nick keeper still held, trying again"),
        "{line}"
    );
    // A guest meanwhile, in the room all the same.
    chat.send("as a guest");
    watcher.expect("> as a guest");
    proxy.release();
    watcher.expect("[lobby] * keeper left");
    chat.expect("* took back nick keeper");
    chat.send("as myself");
    watcher.expect("[lobby] <keeper> as myself");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn no_reconnect_exits_4_on_a_lost_connection() {
    let server = TestServer::start();
    let proxy = Proxy::start(server.addr);
    let mut chat = Chat::spawn("once", proxy.addr, &["--no-reconnect"]);
    chat.expect("joined");
    proxy.cut();
    let (status, stdout, stderr) = chat.finish();
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("chat: connection to the server lost: the server closed the connection"),
        "{stderr:?}"
    );
    assert!(
        !stdout.iter().any(|l| l.contains("reconnect")),
        "{stdout:#?}"
    );
}

#[test]
fn giving_up_after_reconnect_for_exits_4_and_says_why() {
    let mut server = TestServer::start();
    let mut chat = Chat::spawn("quitter", server.addr, &["--reconnect-for", "1s"]);
    chat.expect("joined");
    server.stop();
    chat.expect("reconnecting in");
    let (status, stdout, stderr) = chat.finish_by_itself();
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("chat: connection to the server lost (server shut down: "),
        "{stderr:?}"
    );
    assert!(stderr.contains("not reconnected within 1 s"), "{stderr:?}");
    assert!(
        stdout.iter().any(|l| l.contains("giving up reconnecting")),
        "{stdout:#?}"
    );
}

#[test]
fn end_of_piped_input_while_reconnecting_reports_the_loss() {
    let mut server = TestServer::start();
    let mut chat = Chat::spawn("script", server.addr, &[]);
    chat.expect("joined");
    server.stop();
    chat.expect("reconnecting in");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert!(
        stderr.starts_with("chat: connection to the server lost: server shut down"),
        "{stderr:?}"
    );
}

/// A first server that ends the connection with `last` (a shutdown notice or a `3xx`
/// error) once the client, its input ended, waits for its last replies; the real server
/// then takes the port over, so a reconnect would succeed. The client must not
/// reconnect (nothing is left to send, so nothing would ever end it) but exit 4.
fn ended_while_waiting_for_the_last_replies(last: Frame, reason: &str) {
    let fake = FakeServer::start(move |mut conn| {
        conn.handshake("guest-1");
        conn.recv_until(|f| matches!(f, Frame::Echo { payload } if payload.as_ref() == b"one"));
        // The barrier: sent only after the end of input.
        conn.recv_until(|f| matches!(f, Frame::Echo { .. }));
        conn.send(&last);
    });
    let addr = fake.addr;
    let mut chat = Chat::spawn("script", addr, &[]);
    chat.send("/echo one");
    chat.close_stdin();
    fake.join();
    let _server = TestServer::start_on(addr, false);
    let (status, stdout, stderr) = chat.finish();
    assert_eq!(
        status.code(),
        Some(4),
        "stderr: {stderr}; stdout: {stdout:#?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with(&format!("chat: connection to the server lost: {reason}")),
        "{stderr:?}"
    );
    assert!(
        !stdout.iter().any(|l| l.contains("reconnect")),
        "{stdout:#?}"
    );
}

#[test]
fn a_shutdown_notice_while_waiting_for_the_last_replies_exits_4() {
    ended_while_waiting_for_the_last_replies(
        Frame::Shutdown {
            reason: "server shutting down".into(),
        },
        "server shut down: server shutting down",
    );
}

#[test]
fn a_3xx_error_while_waiting_for_the_last_replies_exits_4() {
    ended_while_waiting_for_the_last_replies(
        Frame::Error {
            code: ErrorCode::IDLE_TIMEOUT,
            text: "idle for too long".into(),
        },
        "server closed the connection: error 302",
    );
}

#[test]
fn a_hand_over_between_servers_sharing_the_port_moves_the_client() {
    let mut old = TestServer::start_on("127.0.0.1:0".parse().unwrap(), true);
    let addr = old.addr;
    let mut chat = Chat::spawn("mover", addr, &["--nick", "mover"]);
    chat.expect("[lobby] * mover joined");
    chat.send("on the old one");
    chat.expect("<mover> on the old one");

    let _new = TestServer::start_on(addr, true);
    old.stop();
    chat.expect("server shutting down");
    chat.expect("* reconnected, ");
    // Only the new server listens now: a newcomer meets the client there.
    let mut other = Chat::spawn("other", addr, &["--nick", "other"]);
    other.expect("[lobby] * other joined");
    chat.expect("[lobby] * other joined");
    chat.send("on the new one");
    other.expect("[lobby] <mover> on the new one");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}
