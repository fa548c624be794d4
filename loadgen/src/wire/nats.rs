//! The NATS client protocol, as far as a pub/sub load client needs it: the lines it
//! sends (`CONNECT`, `SUB`, `PING`, `PUB`, `PONG`) and an incremental decoder of the
//! operations the server sends (`INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`).
//!
//! Control lines end in CRLF; `MSG` and `HMSG` are followed by a payload of the length
//! the line announces and a CRLF, so any bytes (the binary stamp) pass. Operation names
//! are matched case-insensitively, as the protocol allows. Lengths a peer sends are
//! bounded before they are trusted.

/// Longest control line accepted (an `INFO` in a large cluster is a few KiB).
const MAX_LINE: usize = 64 << 10;
/// Largest payload accepted: far above any load payload and NATS's 1 MiB default.
const MAX_PAYLOAD: usize = 64 << 20;

/// The subscription id every member uses (one subscription per connection).
const SID: &str = "1";

/// Appends the handshake: `CONNECT` (no `+OK` acknowledgements, own messages echoed
/// back, as a room's sender also receives), `SUB` to `subject`, then `PING`. The server
/// handles a connection's operations in order, so its `PONG` says the subscription is in
/// place.
pub(crate) fn put_handshake(subject: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(
        concat!(
            r#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"#,
            r#""name":"loadgen","lang":"rust","version":""#,
            env!("CARGO_PKG_VERSION"),
            r#"","protocol":1,"echo":true,"headers":false,"no_responders":false}"#,
            "\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(format!("SUB {subject} {SID}\r\nPING\r\n").as_bytes());
}

/// Appends `PUB subject len`, the payload `len` bytes written by `put_payload`.
pub(crate) fn put_publish(
    subject: &str,
    len: usize,
    out: &mut Vec<u8>,
    put_payload: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    super::put_decimal(out, len);
    out.extend_from_slice(b"\r\n");
    let at = out.len();
    put_payload(out);
    debug_assert_eq!(out.len() - at, len, "the payload must be `len` bytes");
    out.extend_from_slice(b"\r\n");
}

/// The answer to the server's `PING`; without it the server drops the connection.
pub(crate) const PONG: &[u8] = b"PONG\r\n";

/// One operation from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// `INFO {...}`: the server's greeting (and later updates).
    Info,
    /// `MSG` or `HMSG`: a message on a subscribed subject.
    Msg {
        /// The subject it was published to.
        subject: &'a [u8],
        /// The payload as published (after any headers).
        payload: &'a [u8],
    },
    /// `PING`: must be answered with [`PONG`].
    Ping,
    /// `PONG`: the answer to the client's `PING`.
    Pong,
    /// `+OK` (only sent in verbose mode).
    Ok,
    /// `-ERR 'text'`, with the text as sent.
    Err(&'a [u8]),
}

/// Why bytes from the server are not the NATS protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NatsError {
    /// A line that starts with no NATS operation: the port speaks something else.
    #[error("unexpected line from the server: {0:?}")]
    UnknownOp(String),
    /// A `MSG` or `HMSG` line whose arguments are not as the protocol has them.
    #[error("malformed message line: {0:?}")]
    BadMsg(String),
    /// A control line or payload longer than this client accepts.
    #[error("a line or payload is longer than {} bytes", MAX_PAYLOAD)]
    TooLong,
    /// A payload not followed by CRLF.
    #[error("a message payload is not terminated by CRLF")]
    Unterminated,
}

/// Incremental NATS decoder: [`NatsDecoder::feed`] bytes as they arrive, then call
/// [`NatsDecoder::decode`] until it returns `Ok(None)`.
#[derive(Debug, Default)]
pub(crate) struct NatsDecoder {
    input: super::Received,
}

impl NatsDecoder {
    /// Appends bytes read from the socket.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// The next complete operation, `Ok(None)` if more bytes are needed.
    pub(crate) fn decode(&mut self) -> Result<Option<Op<'_>>, NatsError> {
        let rest = &self.input.buf[self.input.start..];
        let Some(n) = rest.windows(2).position(|w| w == b"\r\n") else {
            return if rest.len() > MAX_LINE {
                Err(NatsError::TooLong)
            } else {
                Ok(None)
            };
        };
        if n > MAX_LINE {
            return Err(NatsError::TooLong);
        }
        let line = &rest[..n];
        let (name, args) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[n..]),
        };
        let after_line = n + 2;
        let (op, used) = if name.eq_ignore_ascii_case(b"MSG") || name.eq_ignore_ascii_case(b"HMSG")
        {
            let headers = name.len() == 4;
            let (subject, header_len, total) = msg_args(args, headers)?;
            let end = after_line + total + 2;
            if rest.len() < end {
                return Ok(None);
            }
            if &rest[end - 2..end] != b"\r\n" {
                return Err(NatsError::Unterminated);
            }
            let payload = &rest[after_line + header_len..after_line + total];
            (Op::Msg { subject, payload }, end)
        } else if name.eq_ignore_ascii_case(b"PING") {
            (Op::Ping, after_line)
        } else if name.eq_ignore_ascii_case(b"PONG") {
            (Op::Pong, after_line)
        } else if name.eq_ignore_ascii_case(b"INFO") {
            (Op::Info, after_line)
        } else if name.eq_ignore_ascii_case(b"+OK") {
            (Op::Ok, after_line)
        } else if name.eq_ignore_ascii_case(b"-ERR") {
            (Op::Err(args), after_line)
        } else {
            return Err(NatsError::UnknownOp(snippet(line)));
        };
        self.input.start += used;
        Ok(Some(op))
    }
}

/// `MSG subject sid [reply-to] #bytes` or `HMSG subject sid [reply-to] #header-bytes
/// #total-bytes`: the subject, the header length and the total length.
fn msg_args(args: &[u8], headers: bool) -> Result<(&[u8], usize, usize), NatsError> {
    let bad = || NatsError::BadMsg(snippet(args));
    // At most five words; kept on the stack, since this runs for every message.
    let mut words: [&[u8]; 5] = [&[]; 5];
    let mut count = 0;
    for word in args
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
    {
        if count == words.len() {
            return Err(bad());
        }
        words[count] = word;
        count += 1;
    }
    let counts = if headers { [4, 5] } else { [3, 4] };
    if !counts.contains(&count) {
        return Err(bad());
    }
    let words = &words[..count];
    let number = |w: &[u8]| -> Result<usize, NatsError> {
        if w.is_empty() || w.len() > 10 || !w.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let n = w.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        if n > MAX_PAYLOAD {
            return Err(NatsError::TooLong);
        }
        Ok(n)
    };
    let total = number(words[words.len() - 1])?;
    let header_len = if headers {
        number(words[words.len() - 2])?
    } else {
        0
    };
    if header_len > total {
        return Err(bad());
    }
    Ok((words[0], header_len, total))
}

/// The start of a line as text, for an error message.
fn snippet(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(80)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &[u8] = b"INFO {\"server_id\":\"N\",\"max_payload\":1048576}\r\nPONG\r\n\
MSG lg-1 1 4\r\na\r\n\xff\r\nping\r\nhmsg lg-1 1 _INBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
+OK\r\n-ERR 'Slow Consumer'\r\n";

    #[derive(Debug, PartialEq)]
    enum Owned {
        Info,
        Msg(Vec<u8>, Vec<u8>),
        Ping,
        Pong,
        Ok,
        Err(Vec<u8>),
    }

    fn drain(d: &mut NatsDecoder) -> Result<Vec<Owned>, NatsError> {
        let mut got = Vec::new();
        while let Some(op) = d.decode()? {
            got.push(match op {
                Op::Info => Owned::Info,
                Op::Msg { subject, payload } => Owned::Msg(subject.into(), payload.into()),
                Op::Ping => Owned::Ping,
                Op::Pong => Owned::Pong,
                Op::Ok => Owned::Ok,
                Op::Err(text) => Owned::Err(text.into()),
            });
        }
        Ok(got)
    }

    fn session() -> Vec<Owned> {
        vec![
            Owned::Info,
            Owned::Pong,
            Owned::Msg(b"lg-1".to_vec(), b"a\r\n\xff".to_vec()),
            Owned::Ping,
            Owned::Msg(b"lg-1".to_vec(), b"hi".to_vec()),
            Owned::Ok,
            Owned::Err(b"'Slow Consumer'".to_vec()),
        ]
    }

    #[test]
    fn a_session_decodes_whole_and_split_at_every_point() {
        for split in 0..=SESSION.len() {
            let mut d = NatsDecoder::default();
            d.feed(&SESSION[..split]);
            let mut got = drain(&mut d).expect("valid so far");
            d.feed(&SESSION[split..]);
            got.extend(drain(&mut d).expect("valid"));
            assert_eq!(got, session(), "split at {split}");
        }
    }

    #[test]
    fn other_protocols_and_bad_messages_are_refused() {
        let cases: &[(&[u8], NatsError)] = &[
            (b"*3\r\n", NatsError::UnknownOp("*3".into())),
            (b"MSG lg 1\r\n", NatsError::BadMsg("lg 1".into())),
            (b"MSG lg 1 x\r\n", NatsError::BadMsg("lg 1 x".into())),
            (b"HMSG lg 1 5 3\r\n", NatsError::BadMsg("lg 1 5 3".into())),
            (b"MSG lg 1 99999999\r\n", NatsError::TooLong),
            (b"MSG lg 1 2\r\nabcd\r\n", NatsError::Unterminated),
        ];
        for (bytes, want) in cases {
            let mut d = NatsDecoder::default();
            d.feed(bytes);
            assert_eq!(d.decode().map(|_| ()), Err(want.clone()), "{bytes:?}");
        }
        let mut d = NatsDecoder::default();
        d.feed(&vec![b'I'; MAX_LINE + 1]);
        assert_eq!(d.decode().map(|_| ()), Err(NatsError::TooLong));
    }

    #[test]
    fn publish_and_handshake_lines() {
        let mut out = Vec::new();
        put_publish("lg-1", 3, &mut out, |o| o.extend_from_slice(b"\0\r\n"));
        assert_eq!(out, b"PUB lg-1 3\r\n\0\r\n\r\n");
        let mut out = Vec::new();
        put_handshake("lg-1", &mut out);
        let text = String::from_utf8(out).expect("ASCII");
        assert!(text.starts_with("CONNECT {\"verbose\":false,\"pedantic\":false,"));
        assert!(text.contains("\"echo\":true"));
        assert!(text.ends_with("}\r\nSUB lg-1 1\r\nPING\r\n"), "{text}");
    }
}
