//! Plays the example sessions of `docs/PROTOCOL.md` against a real server, so that what
//! the document shows a client is what a client gets.
//!
//! Every ```` ```hex session ```` and ```` ```text session ```` block is parsed with the
//! notation the document states (sections 2.6 and 3.5): one line per frame or text line,
//! an optional client name, a side marker (`C`/`S` for frames, `>`/`<` for lines), in
//! the order the events happen. Each block runs on a fresh in-process server bound to
//! 127.0.0.1:0 (so guest numbers start at 1), once with one worker and once with
//! several. A client connects when its first line is reached; a sent line is written
//! as it is reached; an expected line is the next thing that client receives, compared
//! byte for byte except for the documented placeholders (`SECONDS.MICROS` in a text
//! line, `t=*` on an `EchoReply` frame). After the last line a client receives nothing
//! more, and one whose last words were `Goodbye` / `/quit` sees the server close.
//! Every read has a timeout, so a mismatch fails instead of hanging.
//!
//! The statistics table of the document is checked here too, against the names a
//! server sends in its `Stats` frame.

// Tests may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use server::{Config, Server};
use shared::Frame;
use shared::frame::{LEN_PREFIX, types};
use shared::text::{Command, parse_command};

/// The document, read at run time so an edit needs no rebuild.
const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");

/// The longest wait for any one expected line or frame, and for the close.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client must stay silent after its last expected line. A shorter wait
/// can only miss a late extra line, never report a false one.
const QUIET: Duration = Duration::from_millis(300);

/// How far a time stamp the server sends may be from the test's own clock.
const CLOCK_SLACK_NS: u64 = 60 * 1_000_000_000;

/// The placeholder for the `SECONDS.MICROS` time stamp of a text echo reply.
const TIME_PLACEHOLDER: &str = "SECONDS.MICROS";

/// The comment mark of an `EchoReply` frame whose `server_time_ns` is any time.
const TIME_MARK: &str = "t=*";

/// Where `server_time_ns` sits in an `EchoReply` frame: after the length and the type.
const TIME_BYTES: std::ops::Range<usize> = LEN_PREFIX + 1..LEN_PREFIX + 9;

/// Server frames larger than this are taken for a framing mistake, not allocated.
const MAX_EXPECTED_FRAME: usize = 16 << 20;

/// Worker counts each session runs with: everything on one thread, and deliveries
/// crossing threads.
const WORKER_COUNTS: [usize; 2] = [1, 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Binary,
    Text,
}

/// One example session of the document.
#[derive(Debug, Clone)]
struct Session {
    framing: Framing,
    /// 1-based line of the opening fence.
    at: usize,
    steps: Vec<Step>,
}

/// One line of a session.
#[derive(Debug, Clone)]
struct Step {
    /// 1-based line in the document.
    line: usize,
    /// The client's name; empty for the unnamed client.
    client: String,
    action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Bytes the client writes.
    Send(Vec<u8>),
    /// A text line (without its newline) the client must receive next.
    Line(String),
    /// A frame the client must receive next; with `any_time`, an `EchoReply` whose
    /// `server_time_ns` may be any plausible time.
    Frame { bytes: Vec<u8>, any_time: bool },
}

fn read_doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// A fenced code block being read: its session framing (`None` for other blocks), the
/// line of its fence, and its numbered lines.
struct OpenBlock<'a> {
    framing: Option<Framing>,
    at: usize,
    lines: Vec<(usize, &'a str)>,
}

/// Every session block of `doc`, parsed.
fn sessions(doc: &str) -> Result<Vec<Session>, String> {
    let mut out = Vec::new();
    let mut open: Option<OpenBlock<'_>> = None;
    for (i, line) in doc.lines().enumerate() {
        let number = i + 1;
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let framing = match info.trim() {
                    "hex session" => Some(Framing::Binary),
                    "text session" => Some(Framing::Text),
                    _ => None,
                };
                open = Some(OpenBlock {
                    framing,
                    at: number,
                    lines: Vec::new(),
                });
            }
            (Some(_), Some(_)) => {
                if let Some(OpenBlock {
                    framing: Some(framing),
                    at,
                    lines,
                }) = open.take()
                {
                    out.push(parse_session(framing, at, &lines)?);
                }
            }
            (Some(block), None) => block.lines.push((number, line)),
            (None, None) => {}
        }
    }
    if open.is_some() {
        return Err("the document ends inside a code block".to_owned());
    }
    Ok(out)
}

fn parse_session(framing: Framing, at: usize, lines: &[(usize, &str)]) -> Result<Session, String> {
    let steps = lines
        .iter()
        .map(|&(line, text)| {
            let (client, action) = match framing {
                Framing::Text => parse_text_line(text),
                Framing::Binary => parse_hex_line(text),
            }
            .map_err(|e| format!("PROTOCOL.md line {line}: {e}: {text:?}"))?;
            Ok(Step {
                line,
                client,
                action,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if steps.is_empty() {
        return Err(format!("PROTOCOL.md line {at}: an empty session"));
    }
    Ok(Session { framing, at, steps })
}

/// A client name: lowercase letters and digits, possibly none.
fn valid_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `[NAME]> TEXT` (typed) or `[NAME]< TEXT` (received).
fn parse_text_line(line: &str) -> Result<(String, Action), String> {
    let Some(marker) = line.find(['>', '<']) else {
        return Err("a text session line needs `>` or `<`".to_owned());
    };
    let name = &line[..marker];
    if !valid_name(name) {
        return Err(format!("{name:?} is not a client name"));
    }
    let rest = &line[marker + 1..];
    let text = match rest.strip_prefix(' ') {
        Some(text) => text,
        None if rest.is_empty() => "",
        None => return Err("the marker must be followed by one space".to_owned()),
    };
    let action = if line[marker..].starts_with('>') {
        Action::Send(format!("{text}\n").into_bytes())
    } else {
        Action::Line(text.to_owned())
    };
    Ok((name.to_owned(), action))
}

/// `[NAME] C HEX.. [# comment]` (sent) or `[NAME] S HEX.. [# comment]` (received): one
/// whole frame per line.
fn parse_hex_line(line: &str) -> Result<(String, Action), String> {
    let (data, comment) = line.split_once('#').unwrap_or((line, ""));
    let mut tokens = data.split_whitespace().peekable();
    let name = match tokens.peek() {
        Some(&"C" | &"S") => String::new(),
        Some(name) if valid_name(name) => {
            let name = (*name).to_owned();
            tokens.next();
            name
        }
        _ => return Err("a hex session line starts with [NAME] C or S".to_owned()),
    };
    let side = tokens.next();
    let bytes = tokens
        .map(|t| match (t.len(), u8::from_str_radix(t, 16)) {
            (2, Ok(b)) => Ok(b),
            _ => Err(format!("{t:?} is not one hex byte")),
        })
        .collect::<Result<Vec<u8>, String>>()?;
    let len = bytes
        .get(..LEN_PREFIX)
        .and_then(|p| <[u8; LEN_PREFIX]>::try_from(p).ok())
        .map(|p| u32::from_be_bytes(p) as usize);
    if len != Some(bytes.len().saturating_sub(LEN_PREFIX)) || bytes.len() <= LEN_PREFIX {
        return Err("the bytes are not exactly one frame".to_owned());
    }
    let any_time = comment.split_whitespace().any(|w| w == TIME_MARK);
    let action = match side {
        Some("C") if any_time => return Err(format!("{TIME_MARK} marks server frames")),
        Some("C") => Action::Send(bytes),
        Some("S") => {
            if any_time && (bytes[LEN_PREFIX] != types::ECHO_REPLY || bytes.len() < TIME_BYTES.end)
            {
                return Err(format!("{TIME_MARK} marks an EchoReply only"));
            }
            Action::Frame { bytes, any_time }
        }
        _ => return Err("the side must be C or S".to_owned()),
    };
    Ok((name, action))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn near(stamp_ns: u64, now_ns: u64) -> Result<(), String> {
    if stamp_ns.abs_diff(now_ns) <= CLOCK_SLACK_NS {
        Ok(())
    } else {
        Err(format!(
            "time stamp {stamp_ns} ns is more than a minute from now ({now_ns} ns)"
        ))
    }
}

/// Whether `actual` (a received line without its newline) is `expected`, where each
/// `SECONDS.MICROS` stands for digits, a dot and exactly six digits making a time
/// within a minute of `now_ns`.
fn match_line(expected: &str, actual: &str, now_ns: u64) -> Result<(), String> {
    let mismatch = || format!("expected {expected:?}, got {actual:?}");
    let mut rest = actual;
    let mut parts = expected.split(TIME_PLACEHOLDER);
    let first = parts.next().unwrap_or("");
    rest = rest.strip_prefix(first).ok_or_else(mismatch)?;
    for literal in parts {
        let secs_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let after_secs = &rest[secs_len..];
        let micros = after_secs.strip_prefix('.').ok_or_else(mismatch)?;
        let micros_len = micros
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(micros.len());
        if secs_len == 0 || micros_len != 6 {
            return Err(mismatch());
        }
        let secs: u64 = rest[..secs_len].parse().map_err(|_| mismatch())?;
        let micros_value: u64 = micros[..6].parse().map_err(|_| mismatch())?;
        let stamp = secs
            .saturating_mul(1_000_000_000)
            .saturating_add(micros_value * 1_000);
        near(stamp, now_ns).map_err(|e| format!("{}: {e}", mismatch()))?;
        rest = micros[6..].strip_prefix(literal).ok_or_else(mismatch)?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(mismatch())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The frame `bytes` encode, for failure messages.
fn describe(bytes: &[u8]) -> String {
    match bytes.get(LEN_PREFIX) {
        Some(&kind) => {
            let body = Bytes::copy_from_slice(&bytes[LEN_PREFIX + 1..]);
            match Frame::decode(kind, body) {
                Ok(frame) => format!("{frame:?}"),
                Err(e) => format!("undecodable: {e}"),
            }
        }
        None => "no frame".to_owned(),
    }
}

/// Whether the received frame `actual` is `expected`, byte for byte; with `any_time`,
/// except the `server_time_ns` of an `EchoReply`, which must be within a minute of
/// `now_ns`.
fn match_frame(expected: &[u8], any_time: bool, actual: &[u8], now_ns: u64) -> Result<(), String> {
    let mismatch = || {
        format!(
            "expected {}\n  ({})\n       got {}\n  ({})",
            hex(expected),
            describe(expected),
            hex(actual),
            describe(actual)
        )
    };
    if !any_time {
        return if expected == actual {
            Ok(())
        } else {
            Err(mismatch())
        };
    }
    if expected.len() != actual.len() || actual.len() < TIME_BYTES.end {
        return Err(mismatch());
    }
    let outside_clock = (0..actual.len()).filter(|i| !TIME_BYTES.contains(i));
    if outside_clock.clone().any(|i| expected[i] != actual[i]) {
        return Err(mismatch());
    }
    let clock = <[u8; 8]>::try_from(&actual[TIME_BYTES]).map_err(|_| mismatch())?;
    near(u64::from_be_bytes(clock), now_ns).map_err(|e| format!("{}\n  {e}", mismatch()))
}

/// One connection of a session.
struct Client {
    name: String,
    reader: BufReader<TcpStream>,
    /// Whether the last thing it sent was `Goodbye` or `/quit`.
    said_goodbye: bool,
}

impl Client {
    fn connect(name: &str, addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            reader: BufReader::new(stream),
            said_goodbye: false,
        })
    }

    fn send(&mut self, bytes: &[u8], framing: Framing) -> Result<(), String> {
        self.said_goodbye = match framing {
            Framing::Binary => bytes.get(LEN_PREFIX) == Some(&types::GOODBYE),
            Framing::Text => {
                let line = std::str::from_utf8(bytes).unwrap_or("");
                let line = line.strip_suffix('\n').unwrap_or(line);
                matches!(parse_command(line), Ok(Some(Command::Quit)))
            }
        };
        self.reader
            .get_mut()
            .write_all(bytes)
            .map_err(|e| format!("send: {e}"))
    }

    /// The next line, without its `\n`.
    fn line(&mut self) -> Result<String, String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                String::from_utf8(buf).map_err(|e| format!("a line that is not UTF-8: {e}"))
            }
            Ok(_) => Err(format!(
                "the connection ended inside a line: {:?}",
                String::from_utf8_lossy(&buf)
            )),
            Err(e) => Err(format!("no line: {e}")),
        }
    }

    /// The next frame, length prefix included.
    fn frame(&mut self) -> Result<Vec<u8>, String> {
        let mut prefix = [0u8; LEN_PREFIX];
        self.reader
            .read_exact(&mut prefix)
            .map_err(|e| format!("no frame: {e}"))?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len == 0 || len > MAX_EXPECTED_FRAME {
            return Err(format!(
                "a frame length of {len}: not a frame ({prefix:02x?})"
            ));
        }
        let mut frame = prefix.to_vec();
        frame.resize(LEN_PREFIX + len, 0);
        self.reader
            .read_exact(&mut frame[LEN_PREFIX..])
            .map_err(|e| format!("frame cut short: {e}"))?;
        Ok(frame)
    }

    /// After its last line: nothing more, and the close if it said goodbye.
    fn finish(&mut self) -> Result<(), String> {
        let left = self.reader.buffer().to_vec();
        if !left.is_empty() {
            return Err(format!("more arrived after the last line: {left:02x?}"));
        }
        let stream = self.reader.get_mut();
        let wait = if self.said_goodbye {
            READ_TIMEOUT
        } else {
            QUIET
        };
        stream
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let mut byte = [0u8; 256];
        match (stream.read(&mut byte), self.said_goodbye) {
            (Ok(0), true) => Ok(()),
            (Ok(0), false) => Err("the server closed the connection".to_owned()),
            (Ok(n), _) => Err(format!(
                "more arrived after the last line: {:?}",
                String::from_utf8_lossy(&byte[..n])
            )),
            (Err(e), false) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(())
            }
            (Err(e), true) => Err(format!("after its goodbye, no close: {e}")),
            (Err(e), false) => Err(format!("read: {e}")),
        }
    }
}

fn who(name: &str) -> String {
    if name.is_empty() {
        "the client".to_owned()
    } else {
        format!("client {name}")
    }
}

/// Plays `session` against the server at `addr`.
fn play(session: &Session, addr: SocketAddr) -> Result<(), String> {
    let mut clients: Vec<Client> = Vec::new();
    for step in &session.steps {
        let fail = |e: String| {
            format!(
                "PROTOCOL.md line {} ({}): {e}",
                step.line,
                who(&step.client)
            )
        };
        let index = match clients.iter().position(|c| c.name == step.client) {
            Some(index) => index,
            None => {
                clients.push(Client::connect(&step.client, addr).map_err(fail)?);
                clients.len() - 1
            }
        };
        let client = &mut clients[index];
        match &step.action {
            Action::Send(bytes) => client.send(bytes, session.framing).map_err(fail)?,
            Action::Line(expected) => {
                let actual = client.line().map_err(fail)?;
                match_line(expected, &actual, now_ns()).map_err(fail)?;
            }
            Action::Frame { bytes, any_time } => {
                let actual = client.frame().map_err(fail)?;
                match_frame(bytes, *any_time, &actual, now_ns()).map_err(fail)?;
            }
        }
    }
    for client in &mut clients {
        client.finish().map_err(|e| {
            format!(
                "session at PROTOCOL.md line {}, end ({}): {e}",
                session.at,
                who(&client.name)
            )
        })?;
    }
    Ok(())
}

/// Starts a fresh server with `workers` workers, plays `session`, stops the server.
fn run_on_fresh_server(session: &Session, workers: usize) -> Result<(), String> {
    let config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers,
        log_interval: Duration::ZERO,
        ..Config::default()
    };
    let running = Server::bind(config)
        .map_err(|e| format!("bind: {e}"))?
        .spawn();
    let outcome = play(session, running.local_addr());
    running
        .stop(Duration::from_secs(10))
        .map_err(|e| format!("stopping the server: {e}"))?;
    outcome.map_err(|e| format!("{workers} worker(s): {e}"))
}

#[test]
fn every_example_session_runs_against_the_server() {
    let sessions = sessions(&read_doc()).unwrap_or_else(|e| panic!("{e}"));
    for framing in [Framing::Binary, Framing::Text] {
        assert!(
            sessions.iter().any(|s| s.framing == framing),
            "PROTOCOL.md has no {framing:?} session"
        );
    }
    let mut failures = Vec::new();
    for session in &sessions {
        for workers in WORKER_COUNTS {
            if let Err(e) = run_on_fresh_server(session, workers) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The first session of `framing` in the document.
fn first_session(framing: Framing) -> Session {
    sessions(&read_doc())
        .unwrap()
        .into_iter()
        .find(|s| s.framing == framing)
        .unwrap()
}

#[test]
fn a_wrong_expected_line_fails_the_text_session() {
    let mut session = first_session(Framing::Text);
    let step = session
        .steps
        .iter_mut()
        .find(|s| matches!(s.action, Action::Line(_)))
        .unwrap();
    let line = step.line;
    let Action::Line(text) = &mut step.action else {
        unreachable!()
    };
    // One character off: the nick the server gives is one number further.
    *text = text.replacen("guest-1", "guest-2", 1);
    let error = run_on_fresh_server(&session, 1).expect_err("a wrong line must fail");
    assert!(
        error.contains(&format!("line {line} ")) && error.contains("guest-2"),
        "{error}"
    );
}

#[test]
fn a_wrong_expected_frame_fails_the_binary_session() {
    let mut session = first_session(Framing::Binary);
    let step = session
        .steps
        .iter_mut()
        .rev()
        .find(|s| {
            matches!(
                s.action,
                Action::Frame {
                    any_time: false,
                    ..
                }
            )
        })
        .unwrap();
    let line = step.line;
    let Action::Frame { bytes, .. } = &mut step.action else {
        unreachable!()
    };
    *bytes.last_mut().unwrap() ^= 1;
    let error = run_on_fresh_server(&session, 1).expect_err("a wrong frame must fail");
    assert!(error.contains(&format!("line {line} ")), "{error}");
}

#[test]
fn a_missing_line_fails_at_the_end_of_the_session() {
    let mut session = first_session(Framing::Text);
    let last = session
        .steps
        .iter()
        .rposition(|s| matches!(s.action, Action::Line(_)))
        .unwrap();
    session.steps.remove(last);
    let error = run_on_fresh_server(&session, 1).expect_err("an unlisted line must fail");
    assert!(
        error.contains("more arrived after the last line"),
        "{error}"
    );
}

#[test]
fn the_time_placeholder_stands_for_a_plausible_time_only() {
    let now = 1_700_000_000_500_000_000;
    let ok = |expected: &str, actual: &str| match_line(expected, actual, now);
    assert_eq!(ok("a b", "a b"), Ok(()));
    assert!(ok("a b", "a c").is_err());
    assert!(ok("a b", "a b ").is_err(), "trailing text");
    assert!(ok("a b", "a").is_err(), "missing text");
    let pattern = "SECONDS.MICROS:ping 1";
    assert_eq!(ok(pattern, "1700000000.123456:ping 1"), Ok(()));
    assert!(ok(pattern, "1700000000.123456:ping 2").is_err(), "payload");
    assert!(ok(pattern, "1700000000.12345:ping 1").is_err(), "5 digits");
    assert!(
        ok(pattern, "1700000000.1234567:ping 1").is_err(),
        "7 digits"
    );
    assert!(ok(pattern, ".123456:ping 1").is_err(), "no seconds");
    assert!(
        ok(pattern, "17000000x0.123456:ping 1").is_err(),
        "not digits"
    );
    assert!(ok(pattern, "1600000000.123456:ping 1").is_err(), "far off");
    assert!(ok("1700000000.123456:ping 1", "1700000000.123457:ping 1").is_err());
}

#[test]
fn the_time_mark_covers_only_the_clock_of_an_echo_reply() {
    let now = 1_700_000_000_500_000_000;
    let reply = |t: u64, payload: &'static [u8]| {
        Frame::EchoReply {
            server_time_ns: t,
            payload: Bytes::from_static(payload),
        }
        .to_bytes()
        .unwrap()
        .to_vec()
    };
    let expected = reply(1_700_000_000_123_456_789, b"hello");
    assert_eq!(
        match_frame(&expected, true, &reply(now, b"hello"), now),
        Ok(())
    );
    assert!(match_frame(&expected, false, &reply(now, b"hello"), now).is_err());
    assert!(match_frame(&expected, true, &reply(now, b"hellp"), now).is_err());
    assert!(match_frame(&expected, true, &reply(now, b"hello!"), now).is_err());
    let far = 1_600_000_000_000_000_000;
    assert!(match_frame(&expected, true, &reply(far, b"hello"), now).is_err());
}

#[test]
fn session_lines_outside_the_notation_are_refused() {
    assert!(parse_text_line("bob: hi").is_err());
    assert!(parse_text_line(">hi").is_err());
    assert!(parse_text_line("Bob> hi").is_err());
    assert_eq!(
        parse_text_line("bob< [lobby] <bob> hi"),
        Ok((
            "bob".to_owned(),
            Action::Line("[lobby] <bob> hi".to_owned())
        ))
    );
    assert_eq!(
        parse_text_line("> /quit"),
        Ok((String::new(), Action::Send(b"/quit\n".to_vec())))
    );
    assert!(parse_hex_line("X 00 00 00 01 09").is_err());
    assert!(parse_hex_line("C 00 00 00 02 09").is_err(), "LEN disagrees");
    assert!(parse_hex_line("C 00 00 00 01 9").is_err(), "one digit");
    assert!(
        parse_hex_line("C 00 00 00 01 09 # t=*").is_err(),
        "client time"
    );
    assert!(
        parse_hex_line("S 00 00 00 01 09 # t=*").is_err(),
        "not an echo"
    );
    assert_eq!(
        parse_hex_line("bob  S 00 00 00 01 09  # ChatEnd"),
        Ok((
            "bob".to_owned(),
            Action::Frame {
                bytes: vec![0, 0, 0, 1, 9],
                any_time: false
            }
        ))
    );
}

/// The counter names of the statistics table of `doc`, in its order (`workerN_` rows
/// as written).
fn documented_stats(doc: &str) -> Vec<String> {
    let (_, rest) = doc.split_once("<!-- stats:start -->").unwrap();
    let (table, _) = rest.split_once("<!-- stats:end -->").unwrap();
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let name = l.trim_matches('|').split('|').next().unwrap_or("");
            name.trim().trim_matches('`').to_owned()
        })
        .collect()
}

/// `names` with each run of `workerN_` names repeated for every worker, N replaced.
fn expand_workers(names: &[String], workers: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let run = names[i..]
            .iter()
            .take_while(|n| n.starts_with("workerN_"))
            .count();
        if run == 0 {
            out.push(names[i].clone());
            i += 1;
            continue;
        }
        for w in 0..workers {
            for name in &names[i..i + run] {
                out.push(name.replacen("workerN_", &format!("worker{w}_"), 1));
            }
        }
        i += run;
    }
    out
}

#[test]
fn the_statistics_table_names_every_counter_in_order() {
    const WORKERS: usize = 3;
    let documented = expand_workers(&documented_stats(&read_doc()), WORKERS);
    let config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: WORKERS,
        log_interval: Duration::ZERO,
        ..Config::default()
    };
    let running = Server::bind(config).unwrap().spawn();
    let mut client = Client::connect("", running.local_addr()).unwrap();
    let encode = |frame: &Frame| frame.to_bytes().unwrap().to_vec();
    client
        .send(&encode(&Frame::Hello { version: 1 }), Framing::Binary)
        .unwrap();
    let welcome = client.frame().unwrap();
    assert_eq!(
        welcome[LEN_PREFIX],
        types::WELCOME,
        "{}",
        describe(&welcome)
    );
    client
        .send(&encode(&Frame::GetStats), Framing::Binary)
        .unwrap();
    let stats = client.frame().unwrap();
    let body = Bytes::copy_from_slice(&stats[LEN_PREFIX + 1..]);
    let Ok(Frame::Stats { entries }) = Frame::decode(stats[LEN_PREFIX], body) else {
        panic!("expected Stats, got {}", describe(&stats));
    };
    let names: Vec<String> = entries.into_iter().map(|(name, _)| name).collect();
    assert_eq!(documented, names, "PROTOCOL.md's statistics table");
    drop(client);
    running.stop(Duration::from_secs(10)).unwrap();
}
