//! Redis's RESP, as far as a pub/sub load client needs it: the commands it sends
//! (`HELLO 3`, `SUBSCRIBE`, `PUBLISH`) and an incremental decoder of what comes back.
//!
//! A member subscribes and publishes on one connection. RESP2 forbids commands other
//! than (un)subscribing on a subscribed connection, RESP3 allows them, so the handshake
//! switches to RESP3 first; messages then arrive as `>3` pushes. The decoder also takes
//! RESP2's `*3` form of a message, so it reads either.
//!
//! Decoding runs in two passes over the buffer, as mini-redis does: [`value_end`] finds
//! where a complete value ends (or says more bytes are needed, which is not an error),
//! then the value is read from the bytes known to be complete. Every length a peer sends
//! is bounded before it is trusted.

/// Longest line (simple string, error, integer, length) accepted.
const MAX_LINE: usize = 64 << 10;
/// Largest bulk string accepted: far above any load payload.
const MAX_BULK: usize = 64 << 20;
/// Most elements an aggregate may announce.
const MAX_ELEMENTS: usize = 1 << 20;
/// Deepest nesting of aggregates accepted (HELLO's reply nests two levels).
const MAX_DEPTH: usize = 8;

/// Appends the handshake: switch to RESP3, then subscribe to `channel`. The
/// subscription's confirmation says the member is in place.
pub(crate) fn put_handshake(channel: &str, out: &mut Vec<u8>) {
    put_command(&[b"HELLO", b"3"], out);
    put_command(&[b"SUBSCRIBE", channel.as_bytes()], out);
}

/// Appends `PUBLISH channel PAYLOAD`, the payload `len` bytes written by `put_payload`.
pub(crate) fn put_publish(
    channel: &str,
    len: usize,
    out: &mut Vec<u8>,
    put_payload: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
    put_bulk(channel.as_bytes(), out);
    put_len(b'$', len, out);
    let at = out.len();
    put_payload(out);
    debug_assert_eq!(out.len() - at, len, "the payload must be `len` bytes");
    out.extend_from_slice(b"\r\n");
}

fn put_command(args: &[&[u8]], out: &mut Vec<u8>) {
    put_len(b'*', args.len(), out);
    for arg in args {
        put_bulk(arg, out);
    }
}

fn put_bulk(bytes: &[u8], out: &mut Vec<u8>) {
    put_len(b'$', bytes.len(), out);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn put_len(kind: u8, n: usize, out: &mut Vec<u8>) {
    out.push(kind);
    super::put_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// One complete value from the server, as the client sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply<'a> {
    /// A pub/sub message: `message`, the channel, the payload.
    Message {
        /// The channel it was published to.
        channel: &'a [u8],
        /// The payload as published.
        payload: &'a [u8],
    },
    /// A subscription confirmed: `subscribe`, the channel, the connection's count.
    Subscribed {
        /// The channel now subscribed.
        channel: &'a [u8],
    },
    /// An error reply (`-ERR ...` or a blob error), without its type byte.
    Error(&'a [u8]),
    /// Anything else: HELLO's map, PUBLISH's receiver count, other pushes.
    Other,
}

/// Why bytes from the server are not RESP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RespError {
    /// A value starts with a byte that is no RESP type: the port speaks something else.
    #[error("a reply began with {0:?}, which is not RESP")]
    NotResp(char),
    /// A length or integer line that is not a number in range.
    #[error("a length line is not a valid number")]
    BadLength,
    /// A line or bulk string longer than any reply this client expects.
    #[error("a reply is longer than {} bytes", MAX_BULK)]
    TooLong,
    /// Aggregates nested deeper than any reply this client expects.
    #[error("replies nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A bulk string not followed by CRLF.
    #[error("a bulk string is not terminated by CRLF")]
    Unterminated,
}

/// Incremental RESP decoder: [`RespDecoder::feed`] bytes as they arrive, then call
/// [`RespDecoder::decode`] until it returns `Ok(None)`.
#[derive(Debug, Default)]
pub(crate) struct RespDecoder {
    input: super::Received,
}

impl RespDecoder {
    /// Appends bytes read from the socket.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// The next complete value, `Ok(None)` if more bytes are needed.
    pub(crate) fn decode(&mut self) -> Result<Option<Reply<'_>>, RespError> {
        let Some(end) = value_end(&self.input.buf, self.input.start, 0)? else {
            return Ok(None);
        };
        let value = &self.input.buf[self.input.start..end];
        self.input.start = end;
        Ok(Some(read_reply(value)))
    }
}

/// The end of the complete value at `buf[pos..]`, `None` if it is not complete yet.
fn value_end(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, next)) = line_at(buf, pos + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(next)),
        b'$' | b'=' | b'!' => {
            let Some(len) = length(line, MAX_BULK)? else {
                return Ok(Some(next)); // a RESP2 null
            };
            let end = next + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(RespError::Unterminated);
            }
            Ok(Some(end))
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            if depth >= MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            let Some(count) = length(line, MAX_ELEMENTS)? else {
                return Ok(Some(next));
            };
            let count = if matches!(kind, b'%' | b'|') {
                count * 2
            } else {
                count
            };
            let mut at = next;
            for _ in 0..count {
                match value_end(buf, at, depth + 1)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        other => Err(RespError::NotResp(char::from(other))),
    }
}

/// The line starting at `pos` (without CRLF) and where the next begins.
fn line_at(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n <= MAX_LINE => Ok(Some((&rest[..n], pos + n + 2))),
        Some(_) => Err(RespError::TooLong),
        None if rest.len() > MAX_LINE => Err(RespError::TooLong),
        None => Ok(None),
    }
}

/// A length line: `None` for `-1` (null), else a count up to `max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    if line == b"-1" {
        return Ok(None);
    }
    if line.is_empty() || line.len() > 10 || !line.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadLength);
    }
    let n = line
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if n > max {
        return Err(RespError::TooLong);
    }
    Ok(Some(n))
}

/// Reads a value [`value_end`] found complete.
fn read_reply(value: &[u8]) -> Reply<'_> {
    // `value_end` found the first line's CRLF, after the type byte.
    let line_end = value
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(value.len())
        .max(1);
    match value.first() {
        Some(b'-') => Reply::Error(&value[1..line_end]),
        Some(b'!') => Reply::Error(bulk(value, 0).map_or(&[][..], |(b, _)| b)),
        Some(b'>' | b'*') if &value[1..line_end] == b"3" => {
            let at = line_end + 2;
            let Some((kind, at)) = bulk(value, at) else {
                return Reply::Other;
            };
            let Some((channel, at)) = bulk(value, at) else {
                return Reply::Other;
            };
            match kind {
                b"message" => match bulk(value, at) {
                    Some((payload, _)) => Reply::Message { channel, payload },
                    None => Reply::Other,
                },
                b"subscribe" => Reply::Subscribed { channel },
                _ => Reply::Other,
            }
        }
        _ => Reply::Other,
    }
}

/// The bulk string at `value[at..]` (known complete) and where the next value begins;
/// `None` if the value there is no bulk string.
fn bulk(value: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if !matches!(value.get(at), Some(b'$' | b'!' | b'=')) {
        return None;
    }
    let rest = &value[at + 1..];
    let n = rest.windows(2).position(|w| w == b"\r\n")?;
    let len = length(&rest[..n], MAX_BULK).ok()??;
    let start = at + 1 + n + 2;
    let bytes = value.get(start..start + len)?;
    Some((bytes, start + len + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Redis 7 sends a member: HELLO's map, the confirmation, a message, the
    /// receiver count of its own PUBLISH.
    const SESSION: &[u8] =
        b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n>3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n\
>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\na\r\n\0\xff\r\n:1\r\n";

    #[derive(Debug, PartialEq)]
    enum Owned {
        Message(Vec<u8>, Vec<u8>),
        Subscribed(Vec<u8>),
        Error(Vec<u8>),
        Other,
    }

    fn drain(d: &mut RespDecoder) -> Result<Vec<Owned>, RespError> {
        let mut got = Vec::new();
        while let Some(reply) = d.decode()? {
            got.push(match reply {
                Reply::Message { channel, payload } => {
                    Owned::Message(channel.into(), payload.into())
                }
                Reply::Subscribed { channel } => Owned::Subscribed(channel.into()),
                Reply::Error(text) => Owned::Error(text.into()),
                Reply::Other => Owned::Other,
            });
        }
        Ok(got)
    }

    fn session() -> Vec<Owned> {
        vec![
            Owned::Other,
            Owned::Subscribed(b"ch".to_vec()),
            Owned::Message(b"ch".to_vec(), b"a\r\n\0\xff".to_vec()),
            Owned::Other,
        ]
    }

    #[test]
    fn a_session_decodes_whole() {
        let mut d = RespDecoder::default();
        d.feed(SESSION);
        assert_eq!(drain(&mut d), Ok(session()));
    }

    #[test]
    fn a_session_decodes_split_at_every_point() {
        for split in 0..=SESSION.len() {
            let mut d = RespDecoder::default();
            d.feed(&SESSION[..split]);
            let mut got = drain(&mut d).expect("valid so far");
            d.feed(&SESSION[split..]);
            got.extend(drain(&mut d).expect("valid"));
            assert_eq!(got, session(), "split at {split}");
        }
    }

    #[test]
    fn a_resp2_message_and_errors_are_read() {
        let mut d = RespDecoder::default();
        d.feed(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n-ERR unknown command 'HELLO'\r\n");
        d.feed(b"!5\r\noops!\r\n$-1\r\n");
        assert_eq!(
            drain(&mut d),
            Ok(vec![
                Owned::Message(b"c".to_vec(), b"hi".to_vec()),
                Owned::Error(b"ERR unknown command 'HELLO'".to_vec()),
                Owned::Error(b"oops!".to_vec()),
                Owned::Other,
            ])
        );
    }

    #[test]
    fn other_protocols_and_hostile_lengths_are_refused() {
        let cases: &[(&[u8], RespError)] = &[
            (b"INFO {\"server_id\":\"x\"}\r\n", RespError::NotResp('I')),
            (b"$99999999999\r\n", RespError::BadLength),
            (b"$100000000\r\n", RespError::TooLong),
            (b"*x\r\n", RespError::BadLength),
            (b"$2\r\nabcd\r\n", RespError::Unterminated),
            (
                &[b'*', b'1', b'\r', b'\n'].repeat(MAX_DEPTH + 1),
                RespError::TooDeep,
            ),
        ];
        for (bytes, want) in cases {
            let mut d = RespDecoder::default();
            d.feed(bytes);
            assert_eq!(d.decode().map(|_| ()), Err(want.clone()), "{bytes:?}");
        }
        let mut d = RespDecoder::default();
        d.feed(&vec![b'+'; MAX_LINE + 2]);
        assert_eq!(d.decode().map(|_| ()), Err(RespError::TooLong));
    }

    #[test]
    fn publish_is_a_resp_array_of_bulk_strings() {
        let mut out = Vec::new();
        put_publish("lg-1", 3, &mut out, |o| o.extend_from_slice(b"\0\r\n"));
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nlg-1\r\n$3\r\n\0\r\n\r\n"
        );
        let mut out = Vec::new();
        put_publish("c", 1047552, &mut out, |o| o.resize(o.len() + 1047552, 7));
        assert!(out.starts_with(b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$1047552\r\n\x07"));
        assert!(out.ends_with(b"\x07\r\n"));
        let mut out = Vec::new();
        put_handshake("lg-1", &mut out);
        assert_eq!(
            out,
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nlg-1\r\n"
        );
    }
}
