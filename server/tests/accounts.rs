//! Accounts end to end: `/login` and `Login` over real sockets, registered nicks,
//! `--require-login`; `server account add` through the built binary with the password
//! on standard input, a login with it, and a SIGHUP reload that picks up a new account.

// Tests may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BinClient, TIMEOUT, TestServer, TextClient};
use server::HashCost;
use shared::{ErrorCode, Frame, Password};

/// A fresh directory for one test's accounts file.
fn accounts_file(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-accounts-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("accounts")
}

/// Removes the directory of a test's accounts file, once the test has passed.
fn clean_up(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn add(path: &Path, nick: &str, password: &str) {
    server::add_account(path, nick, &Password::new(password), HashCost::TEST).unwrap();
}

#[test]
fn text_and_binary_clients_log_in_and_guests_cannot_take_registered_nicks() {
    let path = accounts_file("e2e");
    add(&path, "alice", "correct horse");
    add(&path, "bob", "battery staple");
    let server = TestServer::with(|c| c.accounts = Some(path.clone()));

    let mut text = TextClient::connect(server.addr);
    text.send_line("/nick Alice");
    let refused = text.line();
    assert!(refused.starts_with("ERR 212 "), "{refused}");
    text.send_line("/login alice wrong");
    assert_eq!(
        text.line(),
        "ERR 211 login failed: no such account or wrong password"
    );
    text.send_line("/login alice correct horse");
    assert_eq!(
        text.line(),
        format!("* {} is now known as alice", text.nick)
    );
    text.send_line("hello as alice");
    assert_eq!(text.line(), "[lobby] <alice> hello as alice");

    let mut bin = BinClient::connect(server.addr);
    bin.send(&Frame::SetNick {
        nick: "BOB".to_owned(),
    });
    assert!(matches!(bin.recv(), Frame::Error { code, .. } if code == ErrorCode::NICK_REGISTERED));
    bin.send(&Frame::Login {
        nick: "bob".to_owned(),
        password: Password::new("not it"),
    });
    assert!(matches!(bin.recv(), Frame::Error { code, .. } if code == ErrorCode::LOGIN_FAILED));
    bin.send(&Frame::Login {
        nick: "bob".to_owned(),
        password: Password::new("battery staple"),
    });
    let old = bin.nick.clone();
    assert_eq!(
        bin.recv(),
        Frame::NickChanged {
            old,
            new: "bob".to_owned()
        }
    );
    // Another connection logged in to alice's account cannot take her nick while she
    // holds it.
    bin.send(&Frame::Login {
        nick: "alice".to_owned(),
        password: Password::new("correct horse"),
    });
    assert!(matches!(bin.recv(), Frame::Error { code, .. } if code == ErrorCode::NICK_TAKEN));
    assert_eq!(server.stat("login_failures"), 2);
    assert_eq!(server.stat("login_throttled"), 0);
    clean_up(&path);
}

#[test]
fn require_login_greets_text_clients_but_serves_them_only_after_a_login() {
    let path = accounts_file("require");
    add(&path, "carol", "pw of carol");
    let server = TestServer::with(|c| {
        c.accounts = Some(path.clone());
        c.require_login = true;
    });
    let mut text = TextClient::connect(server.addr);
    text.send_line("/join elsewhere");
    let refused = text.line();
    assert!(refused.starts_with("ERR 213 "), "{refused}");
    text.send_line("/login carol pw of carol");
    assert!(text.line().ends_with("is now known as carol"));
    text.send_line("/join elsewhere");
    assert_eq!(text.line(), "[elsewhere] * carol joined (1 member)");

    let mut bin = BinClient::connect(server.addr);
    bin.send(&Frame::GetStats);
    assert!(matches!(bin.recv(), Frame::Error { code, .. } if code == ErrorCode::LOGIN_REQUIRED));
    bin.send(&Frame::Ping { token: 5 });
    assert_eq!(bin.recv(), Frame::Pong { token: 5 });
    clean_up(&path);
}

/// Runs the built binary with `args`, `stdin` on its standard input; returns its exit
/// code and standard error.
fn server_command(args: &[&str], path: &Path, stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .arg("--accounts")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The cheapest argon2 cost, so the test's logins take no time.
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "8", "--argon2-passes", "1"];

fn account_add(path: &Path, nick: &str, stdin: &str) -> (Option<i32>, String) {
    let mut args = vec!["account", "add", nick];
    args.extend(CHEAP);
    server_command(&args, path, stdin)
}

/// Starts the binary serving `path`; returns it and its address.
fn start_binary(path: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--log-interval",
            "0",
        ])
        .arg("--accounts")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn login(addr: SocketAddr, nick: &str, password: &str) -> Frame {
    let mut bin = BinClient::connect(addr);
    bin.send(&Frame::Login {
        nick: nick.to_owned(),
        password: Password::new(password),
    });
    bin.recv()
}

#[test]
fn account_add_by_the_binary_then_login_and_a_sighup_reload_picks_up_a_new_account() {
    let path = accounts_file("binary");
    let (code, stderr) = account_add(&path, "dave", "dave's password\n");
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("dave $argon2id$"), "{text}");
    assert!(!text.contains("password"), "only the hash is stored");

    let (mut child, addr) = start_binary(&path);
    assert!(
        matches!(login(addr, "dave", "dave's password"), Frame::NickChanged { new, .. } if new == "dave")
    );
    assert!(
        matches!(login(addr, "erin", "erin pw"), Frame::Error { code, .. } if code == ErrorCode::LOGIN_FAILED)
    );

    let (code, stderr) = account_add(&path, "erin", "erin pw\r\n");
    assert_eq!(code, Some(0), "{stderr}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The reload runs on the server's signal thread. Polling with logins would count
    // failures against the throttle, so poll with the registered-nick rule, which
    // checks no password.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut bin = BinClient::connect(addr);
        bin.send(&Frame::SetNick {
            nick: "erin".to_owned(),
        });
        match bin.recv() {
            Frame::Error { code, .. } if code == ErrorCode::NICK_REGISTERED => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the new account never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        matches!(login(addr, "erin", "erin pw"), Frame::NickChanged { new, .. } if new == "erin")
    );

    // A file that no longer parses is not taken: the accounts in use stay.
    std::fs::write(&path, "broken line\n").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(
        login(addr, "dave", "dave's password"),
        Frame::NickChanged { .. }
    ));

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    clean_up(&path);
}

#[test]
fn account_subcommands_report_mistakes_with_their_exit_codes() {
    let path = accounts_file("mistakes");
    let (code, stderr) = account_add(&path, "bad/nick", "x\n");
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = account_add(&path, "frank", "\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("empty"), "{stderr}");
    let (code, stderr) = account_add(&path, "frank", "frank pw\n");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = server_command(&["account", "remove", "gina"], &path, "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no account gina"), "{stderr}");
    let (code, stderr) = server_command(&["account", "remove", "FRANK"], &path, "");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    std::fs::write(&path, "# ok\nhank\n").unwrap();
    let (code, stderr) = account_add(&path, "ivy", "ivy pw\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(":2: expected NICK HASH"), "{stderr}");
    clean_up(&path);
}
