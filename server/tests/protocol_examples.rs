//! Plays the example sessions of `docs/PROTOCOL.md` against a real server, so that what
//! the document shows a client is what a client gets.
//!
//! Every ```` ```hex session ```` and ```` ```text session ```` block is parsed with the
//! notation the document states (sections 2.6 and 3.5): one line per frame or text line,
//! an optional client name, a side marker (`C`/`S` for frames, `>`/`<` for lines), in
//! the order the events happen. Each block runs on a fresh in-process server bound to
//! 127.0.0.1:0 (so guest numbers start at 1), once with one worker and once with
//! several; a block whose info string ends in `accounts` runs on a server whose
//! accounts file registers the example account. A client connects when its first line is reached; a sent line is written
//! as it is reached; an expected line is the next thing that client receives, compared
//! byte for byte except for the documented placeholders (`SECONDS.MICROS` and
//! `HH:MM:SS` in a text line; fields marked `t=*`, `id=$A`, `last=$A` in a frame's
//! comment). A sent frame's fields marked `since=$A+N` or `before=$A+N` carry the number
//! named `$A` where it was first received, plus N. After the last line a client
//! receives nothing more, and one whose last words were `Goodbye` / `/quit`, or whose
//! last frame or line received was an error that closes, sees the server close. Every
//! read has a timeout, so a mismatch fails instead of hanging.
//!
//! The statistics table of the document is checked here too, against the names a
//! server sends in its `Stats` frame.

// Tests may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use server::{Config, Server};
use shared::frame::{LEN_PREFIX, types};
use shared::text::{Command, parse_command};
use shared::{ErrorCode, Frame};

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

/// The placeholder for the `HH:MM:SS` time of day (UTC) of a text history line.
const CLOCK_PLACEHOLDER: &str = "HH:MM:SS";

/// Seconds in a day, for comparing times of day.
const DAY_S: u64 = 86_400;

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
    /// The block's info string ends in `accounts`: the server runs with the example
    /// accounts file ([`EXAMPLE_ACCOUNTS`]).
    accounts: bool,
}

/// The accounts of sessions marked `accounts`: nick and password.
const EXAMPLE_ACCOUNTS: [(&str, &str); 1] = [("alice", "correct horse")];

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
    /// Bytes the client writes: a text line, or a frame whose marked fields are filled
    /// in from the session's named numbers before it is sent.
    Send { bytes: Vec<u8>, marks: Vec<Mark> },
    /// A text line (without its newline) the client must receive next.
    Line(String),
    /// A frame the client must receive next, byte for byte outside its marked fields.
    Frame { bytes: Vec<u8>, marks: Vec<Mark> },
}

/// A frame field whose value differs from run to run, marked in the line's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `t=`: the `server_time_ns` of an `EchoReply` or the `time_ns` of a `RoomMsg`.
    Clock,
    /// `id=`: the `id` of a `RoomMsg`.
    Id,
    /// `last=`: the `last` of a `Joined`.
    Last,
    /// `since=`: the `since` of a `Join`.
    Since,
    /// `before=`: the `before` of a `GetHistory`.
    Before,
}

impl Field {
    /// The field of a comment word `KEY=...`, if KEY names one.
    fn from_key(key: &str) -> Option<Self> {
        match key {
            "t" => Some(Field::Clock),
            "id" => Some(Field::Id),
            "last" => Some(Field::Last),
            "since" => Some(Field::Since),
            "before" => Some(Field::Before),
            _ => None,
        }
    }

    /// Whether the field belongs to frames a client sends (else to frames it receives).
    fn is_sent(self) -> bool {
        matches!(self, Field::Since | Field::Before)
    }
}

/// What a marked field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// `*`: any time within a minute of the test's clock.
    AnyTime,
    /// `$A+N`: the number named `A`, plus `N`. Where the name first appears in a received
    /// frame it takes the value received (less `N`).
    Named { name: char, plus: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    field: Field,
    value: Value,
}

/// The numbers a session has named, by letter.
type Names = BTreeMap<char, u64>;

fn read_doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// A fenced code block being read: its session framing (`None` for other blocks), the
/// line of its fence, and its numbered lines.
struct OpenBlock<'a> {
    framing: Option<Framing>,
    accounts: bool,
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
                let info = info.trim();
                let (info, accounts) = match info.strip_suffix(" accounts") {
                    Some(info) => (info, true),
                    None => (info, false),
                };
                let framing = match info {
                    "hex session" => Some(Framing::Binary),
                    "text session" => Some(Framing::Text),
                    _ => None,
                };
                open = Some(OpenBlock {
                    framing,
                    accounts,
                    at: number,
                    lines: Vec::new(),
                });
            }
            (Some(_), Some(_)) => {
                if let Some(OpenBlock {
                    framing: Some(framing),
                    accounts,
                    at,
                    lines,
                }) = open.take()
                {
                    let mut session = parse_session(framing, at, &lines)?;
                    session.accounts = accounts;
                    out.push(session);
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
    Ok(Session {
        framing,
        at,
        steps,
        accounts: false,
    })
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
        Action::Send {
            bytes: format!("{text}\n").into_bytes(),
            marks: Vec::new(),
        }
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
    let sent = match side {
        Some("C") => true,
        Some("S") => false,
        _ => return Err("the side must be C or S".to_owned()),
    };
    let marks = parse_marks(comment)?;
    if !marks.is_empty() {
        let mut frame = decode(&bytes)?;
        for mark in &marks {
            if mark.field.is_sent() != sent {
                let side = if sent { "sent" } else { "received" };
                return Err(format!("{:?} is not a field of a {side} frame", mark.field));
            }
            if field_mut(&mut frame, mark.field).is_none() {
                return Err(format!("{:?} is not a field of {frame:?}", mark.field));
            }
        }
    }
    let action = if sent {
        Action::Send { bytes, marks }
    } else {
        Action::Frame { bytes, marks }
    };
    Ok((name, action))
}

/// The marks of a frame line's comment: words `t=*` and `KEY=$A` or `KEY=$A+N` for the
/// keys of [`Field`]; other words are prose.
fn parse_marks(comment: &str) -> Result<Vec<Mark>, String> {
    let mut marks: Vec<Mark> = Vec::new();
    for word in comment.split_whitespace() {
        let Some((field, value)) = word
            .split_once('=')
            .and_then(|(key, value)| Some((Field::from_key(key)?, value)))
        else {
            continue;
        };
        let value = match (field, value) {
            (Field::Clock, "*") => Value::AnyTime,
            (Field::Clock, _) => return Err(format!("{word:?}: a clock is marked t=*")),
            (_, value) => parse_named(value)
                .ok_or_else(|| format!("{word:?}: a number is named $A or $A+N"))?,
        };
        if marks.iter().any(|m| m.field == field) {
            return Err(format!("{word:?}: the field is marked twice"));
        }
        marks.push(Mark { field, value });
    }
    Ok(marks)
}

/// `$A` or `$A+N`: a capital letter, and a decimal offset.
fn parse_named(value: &str) -> Option<Value> {
    let mut chars = value.strip_prefix('$')?.chars();
    let name = chars.next().filter(char::is_ascii_uppercase)?;
    let plus = match chars.as_str() {
        "" => 0,
        rest => {
            let digits = rest.strip_prefix('+')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()?
        }
    };
    Some(Value::Named { name, plus })
}

/// The frame `bytes` (length prefix included) encode.
fn decode(bytes: &[u8]) -> Result<Frame, String> {
    Frame::from_encoded(&Bytes::copy_from_slice(bytes))
        .map_err(|e| format!("not a frame ({e}): {}", hex(bytes)))
}

/// The marked field of `frame`, if it has it.
fn field_mut(frame: &mut Frame, field: Field) -> Option<&mut u64> {
    match (frame, field) {
        (Frame::EchoReply { server_time_ns, .. }, Field::Clock) => Some(server_time_ns),
        (Frame::RoomMsg { time_ns, .. }, Field::Clock) => Some(time_ns),
        (Frame::RoomMsg { id, .. }, Field::Id) => Some(id),
        (Frame::Joined { last, .. }, Field::Last) => Some(last),
        (
            Frame::Join {
                since: Some(since), ..
            },
            Field::Since,
        ) => Some(since),
        (Frame::GetHistory { before, .. }, Field::Before) => Some(before),
        _ => None,
    }
}

/// `bytes` with its marked fields set to the numbers they name.
fn fill(bytes: &[u8], marks: &[Mark], names: &Names) -> Result<Vec<u8>, String> {
    if marks.is_empty() {
        return Ok(bytes.to_vec());
    }
    let mut frame = decode(bytes)?;
    for mark in marks {
        let Value::Named { name, plus } = mark.value else {
            return Err(format!("{mark:?}: a sent field needs a named number"));
        };
        let base = names
            .get(&name)
            .ok_or_else(|| format!("${name} is used before a received frame names it"))?;
        let value = base
            .checked_add(plus)
            .ok_or_else(|| format!("${name}+{plus} overflows"))?;
        let kind = frame.frame_type();
        *field_mut(&mut frame, mark.field)
            .ok_or_else(|| format!("{:?} is not a field of frame type {kind}", mark.field))? =
            value;
    }
    frame
        .to_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| format!("cannot encode the frame: {e}"))
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
/// within a minute of `now_ns`, and each `HH:MM:SS` for a UTC time of day within a
/// minute of `now_ns`'s.
fn match_line(expected: &str, actual: &str, now_ns: u64) -> Result<(), String> {
    let mismatch = || format!("expected {expected:?}, got {actual:?}");
    let mut pattern = expected;
    let mut rest = actual;
    loop {
        let next = [TIME_PLACEHOLDER, CLOCK_PLACEHOLDER]
            .into_iter()
            .filter_map(|p| pattern.find(p).map(|at| (at, p)))
            .min();
        let Some((at, placeholder)) = next else {
            return if rest == pattern {
                Ok(())
            } else {
                Err(mismatch())
            };
        };
        rest = rest.strip_prefix(&pattern[..at]).ok_or_else(mismatch)?;
        pattern = &pattern[at + placeholder.len()..];
        let taken = if placeholder == TIME_PLACEHOLDER {
            unix_micros(rest, now_ns)
        } else {
            time_of_day(rest, now_ns)
        };
        let len = taken.map_err(|e| format!("{}: {e}", mismatch()))?;
        rest = &rest[len..];
    }
}

/// The length of the `SECONDS.MICROS` stamp that `s` starts with, if it is one near
/// `now_ns`.
fn unix_micros(s: &str, now_ns: u64) -> Result<usize, String> {
    let secs_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let micros = s[secs_len..].strip_prefix('.').ok_or("no SECONDS.MICROS")?;
    let micros_len = micros
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(micros.len());
    if secs_len == 0 || micros_len != 6 {
        return Err("no SECONDS.MICROS".to_owned());
    }
    let secs: u64 = s[..secs_len].parse().map_err(|e| format!("seconds: {e}"))?;
    let micros_value: u64 = micros[..6].parse().map_err(|e| format!("micros: {e}"))?;
    let stamp = secs
        .saturating_mul(1_000_000_000)
        .saturating_add(micros_value * 1_000);
    near(stamp, now_ns)?;
    Ok(secs_len + 1 + 6)
}

/// The length of the `HH:MM:SS` time of day (UTC) that `s` starts with, if it is one
/// within a minute of `now_ns`'s.
fn time_of_day(s: &str, now_ns: u64) -> Result<usize, String> {
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() >= 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && [0, 1, 3, 4, 6, 7]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit());
    if !shape_ok {
        return Err("no HH:MM:SS".to_owned());
    }
    let two = |i: usize| u64::from(bytes[i] - b'0') * 10 + u64::from(bytes[i + 1] - b'0');
    let (h, m, sec) = (two(0), two(3), two(6));
    if h >= 24 || m >= 60 || sec >= 60 {
        return Err(format!("{:?} is not a time of day", &s[..8]));
    }
    let shown = h * 3600 + m * 60 + sec;
    let now = now_ns / 1_000_000_000 % DAY_S;
    let apart = shown.abs_diff(now);
    if apart.min(DAY_S - apart) * 1_000_000_000 > CLOCK_SLACK_NS {
        return Err(format!(
            "{:?} is more than a minute from now ({now} s into the day)",
            &s[..8]
        ));
    }
    Ok(8)
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

/// Whether the received frame `actual` is `expected`, byte for byte outside the fields
/// `marks` names: a clock must be within a minute of `now_ns`; a named number must be
/// the one `names` holds (plus its offset), or, where the name first appears, is taken
/// from `actual` into `names` and must be within a minute of `now_ns` (ids start at
/// their room's creation time).
fn match_frame(
    expected: &[u8],
    marks: &[Mark],
    actual: &[u8],
    now_ns: u64,
    names: &mut Names,
) -> Result<(), String> {
    let mismatch = || {
        format!(
            "expected {}\n  ({})\n       got {}\n  ({})",
            hex(expected),
            describe(expected),
            hex(actual),
            describe(actual)
        )
    };
    if marks.is_empty() {
        return if expected == actual {
            Ok(())
        } else {
            Err(mismatch())
        };
    }
    let (Ok(mut want), Ok(mut got)) = (decode(expected), decode(actual)) else {
        return Err(mismatch());
    };
    // Named only once the whole frame matches.
    let mut named = names.clone();
    for mark in marks {
        let value = *field_mut(&mut got, mark.field).ok_or_else(mismatch)?;
        let fail = |e: String| format!("{}\n  {:?}: {e}", mismatch(), mark.field);
        match mark.value {
            Value::AnyTime => near(value, now_ns).map_err(fail)?,
            Value::Named { name, plus } => match named.get(&name) {
                Some(&base) => {
                    if base.checked_add(plus) != Some(value) {
                        return Err(fail(format!(
                            "${name}+{plus} is {}, not {value}",
                            base.wrapping_add(plus)
                        )));
                    }
                }
                None => {
                    let base = value
                        .checked_sub(plus)
                        .ok_or_else(|| fail(format!("{value} is less than {plus}")))?;
                    near(base, now_ns).map_err(fail)?;
                    named.insert(name, base);
                }
            },
        }
        *field_mut(&mut want, mark.field).ok_or_else(mismatch)? = value;
    }
    let want = want
        .to_bytes()
        .map_err(|e| format!("{}: {e}", mismatch()))?;
    if want.as_ref() != actual {
        return Err(mismatch());
    }
    *names = named;
    Ok(())
}

/// One connection of a session.
struct Client {
    name: String,
    reader: BufReader<TcpStream>,
    /// Whether the server is to close the connection: the last thing the client sent
    /// was `Goodbye` or `/quit`, or it has since received an error that closes.
    closing: bool,
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
            closing: false,
        })
    }

    fn send(&mut self, bytes: &[u8], framing: Framing) -> Result<(), String> {
        self.closing = match framing {
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

    /// Notes a received frame or line: after an error that closes, the close follows.
    fn received(&mut self, closing_error: bool) {
        self.closing |= closing_error;
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

    /// After its last line: nothing more, and the close if one is due.
    fn finish(&mut self) -> Result<(), String> {
        let left = self.reader.buffer().to_vec();
        if !left.is_empty() {
            return Err(format!("more arrived after the last line: {left:02x?}"));
        }
        let stream = self.reader.get_mut();
        let wait = if self.closing { READ_TIMEOUT } else { QUIET };
        stream
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let mut byte = [0u8; 256];
        match (stream.read(&mut byte), self.closing) {
            (Ok(0), true) => Ok(()),
            (Ok(0), false) => Err("the server closed the connection".to_owned()),
            (Ok(n), _) => Err(format!(
                "more arrived after the last line: {:?}",
                String::from_utf8_lossy(&byte[..n])
            )),
            (Err(e), false) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(())
            }
            (Err(e), true) => Err(format!("no close: {e}")),
            (Err(e), false) => Err(format!("read: {e}")),
        }
    }
}

/// Whether `line` is an `ERR` line whose code closes the connection.
fn closing_line(line: &str) -> bool {
    line.strip_prefix("ERR ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|code| code.parse().ok())
        .is_some_and(|code| ErrorCode(code).closes_connection())
}

/// Whether `frame` is an `Error` whose code closes the connection.
fn closing_frame(frame: &[u8]) -> bool {
    matches!(decode(frame), Ok(Frame::Error { code, .. }) if code.closes_connection())
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
    let mut names = Names::new();
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
            Action::Send { bytes, marks } => {
                let bytes = fill(bytes, marks, &names).map_err(fail)?;
                client.send(&bytes, session.framing).map_err(fail)?;
            }
            Action::Line(expected) => {
                let actual = client.line().map_err(fail)?;
                match_line(expected, &actual, now_ns()).map_err(fail)?;
                client.received(closing_line(&actual));
            }
            Action::Frame { bytes, marks } => {
                let actual = client.frame().map_err(fail)?;
                match_frame(bytes, marks, &actual, now_ns(), &mut names).map_err(fail)?;
                client.received(closing_frame(&actual));
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
    let accounts = session.accounts.then(|| {
        let path = std::env::temp_dir().join(format!(
            "chat-protocol-accounts-{}-{}-{workers}",
            std::process::id(),
            session.at
        ));
        let _ = std::fs::remove_file(&path);
        for (nick, password) in EXAMPLE_ACCOUNTS {
            let password = shared::Password::new(password);
            server::add_account(&path, nick, &password, server::HashCost::TEST).unwrap();
        }
        path
    });
    let config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers,
        log_interval: Duration::ZERO,
        accounts: accounts.clone(),
        ..Config::default()
    };
    let running = Server::bind(config)
        .map_err(|e| format!("bind: {e}"))?
        .spawn();
    let outcome = play(session, running.local_addr());
    running
        .stop(Duration::from_secs(10))
        .map_err(|e| format!("stopping the server: {e}"))?;
    if let Some(path) = accounts {
        let _ = std::fs::remove_file(path);
    }
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
        .find(|s| matches!(&s.action, Action::Frame { marks, .. } if marks.is_empty()))
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
fn a_wrong_message_id_fails_the_binary_session() {
    let mut session = sessions(&read_doc())
        .unwrap()
        .into_iter()
        .find(|s| {
            s.steps
                .iter()
                .any(|step| matches!(&step.action, Action::Send { marks, .. } if !marks.is_empty()))
        })
        .expect("a binary session that sends a named id");
    // The last message id expected: one further than the one the server hands out.
    let step = session
        .steps
        .iter_mut()
        .rev()
        .find(|s| {
            matches!(&s.action, Action::Frame { marks, .. }
                if marks.iter().any(|m| m.field == Field::Id))
        })
        .unwrap();
    let line = step.line;
    let Action::Frame { marks, .. } = &mut step.action else {
        unreachable!()
    };
    for mark in marks.iter_mut().filter(|m| m.field == Field::Id) {
        if let Value::Named { plus, .. } = &mut mark.value {
            *plus += 1;
        }
    }
    let error = run_on_fresh_server(&session, 1).expect_err("a wrong id must fail");
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
fn the_clock_placeholder_stands_for_a_time_of_day_near_now_only() {
    // 22:13:20.5 UTC.
    let now = 1_700_000_000_500_000_000;
    let ok = |expected: &str, actual: &str| match_line(expected, actual, now);
    let pattern = "[lobby] HH:MM:SS <alice> hi";
    assert_eq!(ok(pattern, "[lobby] 22:13:20 <alice> hi"), Ok(()));
    assert_eq!(ok(pattern, "[lobby] 22:14:15 <alice> hi"), Ok(()));
    assert!(ok(pattern, "[lobby] 22:13:20 <alice> ho").is_err(), "text");
    assert!(
        ok(pattern, "[lobby] 22:15:20 <alice> hi").is_err(),
        "far off"
    );
    assert!(
        ok(pattern, "[lobby] 10:13:20 <alice> hi").is_err(),
        "far off"
    );
    assert!(
        ok(pattern, "[lobby] 22:13:2 <alice> hi").is_err(),
        "one digit"
    );
    assert!(ok(pattern, "[lobby] 22-13-20 <alice> hi").is_err(), "shape");
    assert!(ok(pattern, "[lobby] 22:13:20<alice> hi").is_err(), "space");
    assert!(
        ok(pattern, "[lobby] HH:MM:SS <alice> hi").is_err(),
        "literal"
    );
    // Across midnight: 00:00:30 is 40 s after 23:59:50.
    let before_midnight = 1_700_006_390_000_000_000;
    assert_eq!(
        match_line("HH:MM:SS", "00:00:30", before_midnight),
        Ok(()),
        "across midnight"
    );
    assert!(match_line("HH:MM:SS", "24:00:00", before_midnight).is_err());
    let both = "SECONDS.MICROS HH:MM:SS";
    assert_eq!(ok(both, "1700000000.123456 22:13:20"), Ok(()));
    assert!(ok(both, "1700000000.123456 22:13:20 ").is_err());
}

fn encoded(frame: &Frame) -> Vec<u8> {
    frame.to_bytes().unwrap().to_vec()
}

const ANY_TIME: Mark = Mark {
    field: Field::Clock,
    value: Value::AnyTime,
};

fn named(field: Field, name: char, plus: u64) -> Mark {
    Mark {
        field,
        value: Value::Named { name, plus },
    }
}

#[test]
fn the_time_mark_covers_only_the_clock_of_an_echo_reply() {
    let now = 1_700_000_000_500_000_000;
    let reply = |t: u64, payload: &'static [u8]| {
        encoded(&Frame::EchoReply {
            server_time_ns: t,
            payload: Bytes::from_static(payload),
        })
    };
    let expected = reply(1_700_000_000_123_456_789, b"hello");
    let check = |marks: &[Mark], actual: &[u8]| {
        match_frame(&expected, marks, actual, now, &mut Names::new())
    };
    assert_eq!(check(&[ANY_TIME], &reply(now, b"hello")), Ok(()));
    assert!(check(&[], &reply(now, b"hello")).is_err());
    assert!(check(&[ANY_TIME], &reply(now, b"hellp")).is_err());
    assert!(check(&[ANY_TIME], &reply(now, b"hello!")).is_err());
    let far = 1_600_000_000_000_000_000;
    assert!(check(&[ANY_TIME], &reply(far, b"hello")).is_err());
}

#[test]
fn named_ids_are_taken_once_then_must_agree() {
    let now = 1_700_000_000_500_000_000;
    let base = now - 1_000;
    let joined = |last: u64| {
        encoded(&Frame::Joined {
            room: "lobby".to_owned(),
            nick: "alice".to_owned(),
            members: 1,
            last,
        })
    };
    let message = |id: u64, time_ns: u64, text: &str| {
        encoded(&Frame::RoomMsg {
            room: "lobby".to_owned(),
            from: "alice".to_owned(),
            id,
            time_ns,
            text: text.to_owned(),
        })
    };
    let mut names = Names::new();
    let example = 1_700_000_000_000_000_000;
    let last_a = [named(Field::Last, 'A', 0)];
    assert_eq!(
        match_frame(&joined(example), &last_a, &joined(base), now, &mut names),
        Ok(())
    );
    assert_eq!(names.get(&'A'), Some(&base));

    let id_a1 = [named(Field::Id, 'A', 1), ANY_TIME];
    let expected = message(example + 1, example, "hi");
    let mut check = |actual: &[u8]| match_frame(&expected, &id_a1, actual, now, &mut names);
    assert_eq!(check(&message(base + 1, now, "hi")), Ok(()));
    assert!(check(&message(base + 2, now, "hi")).is_err(), "id");
    assert!(check(&message(base, now, "hi")).is_err(), "id");
    assert!(check(&message(base + 1, now, "ho")).is_err(), "text");
    assert!(
        check(&message(base + 1, 1_600_000_000_000_000_000, "hi")).is_err(),
        "time"
    );
    assert!(check(&joined(base + 1)).is_err(), "frame type");

    // Where a name first appears, its value must be a plausible room creation time.
    let mut fresh = Names::new();
    let far = 1_600_000_000_000_000_000;
    assert!(match_frame(&joined(example), &last_a, &joined(far), now, &mut fresh).is_err());
    assert!(match_frame(&joined(example), &last_a, &joined(7), now, &mut fresh).is_err());
    assert!(fresh.is_empty(), "a failed match names nothing");
    // An unmarked id is compared byte for byte.
    assert!(match_frame(&joined(example), &[], &joined(base), now, &mut fresh).is_err());
}

#[test]
fn sent_frames_carry_the_named_ids() {
    let join = |since: u64| {
        encoded(&Frame::Join {
            room: "lobby".to_owned(),
            since: Some(since),
        })
    };
    let names = Names::from([('A', 1_000)]);
    let since = [named(Field::Since, 'A', 2)];
    assert_eq!(fill(&join(5), &since, &names), Ok(join(1_002)));
    assert_eq!(fill(&join(5), &[], &names), Ok(join(5)));
    let unnamed = [named(Field::Since, 'B', 0)];
    assert!(fill(&join(5), &unnamed, &names).is_err());
    let history = |before: u64| {
        encoded(&Frame::GetHistory {
            room: "lobby".to_owned(),
            before,
            limit: 2,
        })
    };
    let before = [named(Field::Before, 'A', 0)];
    assert_eq!(fill(&history(0), &before, &names), Ok(history(1_000)));
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
        Ok((
            String::new(),
            Action::Send {
                bytes: b"/quit\n".to_vec(),
                marks: Vec::new()
            }
        ))
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
                marks: Vec::new()
            }
        ))
    );
    let join = hex(&encoded(&Frame::Join {
        room: "lobby".to_owned(),
        since: Some(5),
    }));
    let plain_join = hex(&encoded(&Frame::Join {
        room: "lobby".to_owned(),
        since: None,
    }));
    let joined = hex(&encoded(&Frame::Joined {
        room: "lobby".to_owned(),
        nick: "bob".to_owned(),
        members: 1,
        last: 5,
    }));
    assert_eq!(
        parse_hex_line(&format!("C {join} # Join since=$A+2 (a resume)")),
        Ok((
            String::new(),
            Action::Send {
                bytes: decode_hex(&join),
                marks: vec![named(Field::Since, 'A', 2)]
            }
        ))
    );
    assert_eq!(
        parse_hex_line(&format!("S {joined} # last=$B")).map(|(_, a)| a),
        Ok(Action::Frame {
            bytes: decode_hex(&joined),
            marks: vec![named(Field::Last, 'B', 0)]
        })
    );
    let refused = [
        (format!("C {plain_join} # since=$A"), "a Join without since"),
        (format!("S {join} # since=$A"), "since on a received frame"),
        (format!("C {joined} # last=$A"), "last on a sent frame"),
        (format!("S {joined} # id=$A"), "no id in Joined"),
        (format!("S {joined} # last=$a"), "a lowercase name"),
        (format!("S {joined} # last=$A+"), "no offset"),
        (format!("S {joined} # last=$A++1"), "two signs"),
        (format!("S {joined} # last=$A-1"), "a negative offset"),
        (format!("S {joined} # last=7"), "a number"),
        (format!("S {joined} # last=$A, more"), "a comma"),
        (format!("S {joined} # last=$A last=$B"), "twice"),
        (format!("S {joined} # t=1"), "a clock value"),
    ];
    for (line, why) in refused {
        assert!(parse_hex_line(&line).is_err(), "{why}: {line}");
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
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
        .send(
            &encode(&Frame::Hello {
                version: shared::PROTOCOL_VERSION,
            }),
            Framing::Binary,
        )
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

#[test]
fn the_document_states_the_history_defaults() {
    let config = Config::default();
    assert!(config.history_room_bytes <= config.max_pending / 2);
    let facts = [
        format!("`--history-messages` ({})", config.history_messages),
        format!(
            "`--history-room-bytes` ({} KiB)",
            config.history_room_bytes >> 10
        ),
        format!("`--history-budget` ({} MiB)", config.history_budget >> 20),
        format!("`--max-pending` ({} MiB)", config.max_pending >> 20),
    ];
    let doc = read_doc();
    let prose = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    for fact in facts {
        assert!(prose.contains(&fact), "PROTOCOL.md does not say {fact:?}");
    }
}
