//! The client against the real server, in-process on 127.0.0.1:0.

use crate::common::{Chat, TestServer};

#[test]
fn two_clients_chat_in_a_room_and_by_direct_message() {
    let server = TestServer::start();
    let mut alice = Chat::spawn("alice", server.addr, &["--nick", "alice"]);
    alice.expect("[lobby] * alice joined");
    let mut bob = Chat::spawn("bob", server.addr, &["--nick", "bob"]);
    bob.expect("[lobby] * bob joined");
    alice.expect("[lobby] * bob joined");

    alice.send("hello bob");
    bob.expect("[lobby] <alice> hello bob");
    alice.expect("[lobby] <alice> hello bob");

    bob.send("/msg alice psst");
    bob.expect("[dm] -> alice: psst");
    alice.expect("[dm] <bob> psst");

    bob.send("/msg nobody hi");
    bob.expect("! error 204");

    bob.send("/who");
    bob.expect("* in lobby: ");
    bob.close_stdin();
    alice.expect("[lobby] * bob left");
    let (status, _, stderr) = bob.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");

    alice.close_stdin();
    let (status, stdout, stderr) = alice.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr:?}");
    // Our own line came back once from the server and was not printed twice.
    let own = stdout
        .iter()
        .filter(|l| l.contains("<alice> hello bob"))
        .count();
    assert_eq!(own, 1, "{stdout:#?}");
}

#[test]
fn addr_takes_a_host_name() {
    let server = TestServer::start();
    let addr = format!("localhost:{}", server.addr.port());
    let mut chat = Chat::spawn_at("localhost", &addr, &["--nick", "local"]);
    chat.expect("[lobby] * local joined");
    chat.close_stdin();
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn echo_prints_three_times_and_the_round_trip() {
    let server = TestServer::start();
    let mut chat = Chat::spawn("echo", server.addr, &[]);
    // All input at once, then end of input: the reply must still be waited for.
    chat.send("/echo one");
    chat.send("/echo two");
    chat.close_stdin();
    let (status, stdout, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    for payload in ["one", "two"] {
        let line = stdout
            .iter()
            .find(|l| l.starts_with(&format!("echo \"{payload}\"")))
            .unwrap_or_else(|| panic!("no echo line for {payload}: {stdout:#?}"));
        assert!(line.contains(", server "), "{line}");
        assert!(line.contains(", received "), "{line}");
        assert!(
            line.contains("round trip") && line.ends_with(" ms"),
            "{line}"
        );
    }
}

#[test]
fn private_chat_and_busy() {
    let server = TestServer::start();
    let mut alice = Chat::spawn("alice", server.addr, &["--nick", "alice"]);
    alice.expect("alice joined");
    let mut bob = Chat::spawn("bob", server.addr, &["--nick", "bob"]);
    bob.expect("bob joined");
    let mut carol = Chat::spawn("carol", server.addr, &["--nick", "carol"]);
    carol.expect("carol joined");

    alice.send("/chat bob");
    bob.expect("alice asks for a private chat");
    bob.send("/chat alice");
    bob.expect("private chat with alice started");
    alice.expect("private chat with bob started");

    alice.send("just between us");
    alice.expect("[chat] <alice> just between us");
    bob.expect("[chat] <alice> just between us");

    carol.send("/chat alice");
    carol.expect("BUSY: alice is busy with another private chat");

    // Plain lines outside the private chat still go to the room.
    carol.send("anyone here?");
    alice.expect("[lobby] <carol> anyone here?");

    bob.send("/chat");
    bob.expect("private chat with alice ended");
    alice.expect("private chat with bob ended");
    alice.send("back in the lobby");
    bob.expect("[lobby] <alice> back in the lobby");

    for chat in [alice, bob, carol] {
        let name = chat.name.clone();
        let (status, _, stderr) = chat.finish();
        assert_eq!(status.code(), Some(0), "{name}: {stderr}");
    }
}

#[test]
fn server_shutdown_is_one_line_and_exit_code_5() {
    let mut server = TestServer::start();
    let mut chat = Chat::spawn("victim", server.addr, &["--no-reconnect"]);
    chat.expect("joined");
    server.stop();
    chat.expect("server shutting down");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(5), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("chat: server shut down"), "{stderr:?}");
}

#[test]
fn ctrl_c_says_goodbye_and_exits_0() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let server = TestServer::start();
    let mut watcher = Chat::spawn("watcher", server.addr, &["--nick", "watcher"]);
    watcher.expect("watcher joined");
    let mut chat = Chat::spawn("leaver", server.addr, &["--nick", "leaver"]);
    chat.expect("leaver joined");
    watcher.expect("leaver joined");
    let pid = Pid::from_raw(i32::try_from(chat.pid()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    watcher.expect("[lobby] * leaver left");
}

#[test]
fn refusals_are_shown_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut alice = Chat::spawn("alice", server.addr, &["--nick", "alice"]);
    alice.expect("alice joined");
    let mut other = Chat::spawn("other", server.addr, &[]);
    other.expect("joined");
    other.send("/nick alice");
    other.expect("! error 202 nick-taken");
    other.send("/nick bad\u{7}name");
    other.expect("! error 203 invalid-name");
    other.send("/join rust");
    other.expect("[rust] * ");
    other.send("in rust");
    other.expect("> in rust");
    other.send("/rooms");
    other.expect("* rooms: ");
    other.send("/stats");
    other.expect("* stats: ");
    let (status, _, stderr) = other.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn a_message_over_the_servers_limit_is_refused_locally() {
    let server = TestServer::start();
    // `--wait 600`: exiting within the test timeout shows nothing waits for an answer
    // to the message that was never sent.
    let mut chat = Chat::spawn("big", server.addr, &["--wait", "600"]);
    chat.send(&format!("/echo {}", "x".repeat(1_100_000)));
    chat.send("/echo after");
    chat.expect("! not sent: message of");
    chat.expect("echo \"after\"");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn history_shows_the_last_messages_with_their_times() {
    let server = TestServer::start();
    let mut chat = Chat::spawn("historian", server.addr, &["--nick", "historian"]);
    chat.expect("[lobby] * historian joined");
    for text in ["one", "two", "three"] {
        chat.send(text);
        chat.expect(&format!("[lobby] <historian> {text}"));
    }
    chat.send("/history 2");
    chat.expect("* history of lobby: 2 messages; older ones not shown");
    let two = chat.expect("<historian> two");
    let three = chat.expect("<historian> three");
    for (line, text) in [(two, "two"), (three, "three")] {
        // `[lobby] HH:MM:SS <historian> TEXT`, not a live line.
        let rest = line
            .strip_prefix("[lobby] ")
            .unwrap_or_else(|| panic!("{line}"));
        let (time, said) = rest.split_at(8);
        assert!(
            time.bytes().enumerate().all(|(i, b)| if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }),
            "{line}"
        );
        assert_eq!(said, format!(" <historian> {text}"), "{line}");
    }
    chat.send("/history nowhere");
    chat.expect("! error ");
    let (status, _, stderr) = chat.finish();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}
