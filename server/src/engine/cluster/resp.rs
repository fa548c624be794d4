//! Just enough of RESP (Redis's wire format, version 2) to read a subscribed
//! connection's pushes and write its `SUBSCRIBE` commands.
//!
//! The subscriber speaks RESP itself instead of through the `redis` crate: the
//! crate's blocking pub/sub connection cannot take a new subscription while it waits
//! for a message except by a read timeout, and a timeout in the middle of a reply can
//! leave its parser out of step. Here one thread reads and another writes the same
//! socket, so a subscription goes out at once.

use std::io::{self, BufRead, Read, Write};

/// Largest bulk string accepted; a larger one means the stream is not what we think.
const MAX_BULK: usize = 16 << 20;

/// Most elements in one array.
const MAX_ARRAY: usize = 64;

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:5`.
    Int(i64),
    /// `$3\r\nabc`.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Value>),
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad RESP: {what}"))
}

fn line<R: BufRead>(reader: &mut R) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(4096).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if !buf.ends_with(b"\r\n") {
        return Err(bad("line without CRLF"));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| bad("line not UTF-8"))
}

fn length(text: &str, max: usize) -> io::Result<Option<usize>> {
    let n: i64 = text.parse().map_err(|_| bad("length"))?;
    match n {
        -1 => Ok(None),
        n if n < 0 => Err(bad("negative length")),
        n => {
            let n = usize::try_from(n).map_err(|_| bad("length"))?;
            if n > max {
                return Err(bad("length over the limit"));
            }
            Ok(Some(n))
        }
    }
}

/// Reads one value.
pub(super) fn read(reader: &mut impl BufRead) -> io::Result<Value> {
    read_depth(reader, 0)
}

fn read_depth(reader: &mut impl BufRead, depth: usize) -> io::Result<Value> {
    let head = line(reader)?;
    let (kind, rest) = head.split_at_checked(1).ok_or_else(|| bad("empty line"))?;
    match kind {
        "+" => Ok(Value::Simple(rest.to_owned())),
        "-" => Ok(Value::Error(rest.to_owned())),
        ":" => rest.parse().map(Value::Int).map_err(|_| bad("integer")),
        "$" => match length(rest, MAX_BULK)? {
            None => Ok(Value::Nil),
            Some(n) => {
                let mut data = vec![0; n + 2];
                reader.read_exact(&mut data)?;
                if !data.ends_with(b"\r\n") {
                    return Err(bad("bulk string without CRLF"));
                }
                data.truncate(n);
                Ok(Value::Bulk(data))
            }
        },
        "*" if depth < 2 => match length(rest, MAX_ARRAY)? {
            None => Ok(Value::Nil),
            Some(n) => (0..n)
                .map(|_| read_depth(reader, depth + 1))
                .collect::<io::Result<_>>()
                .map(Value::Array),
        },
        _ => Err(bad("unexpected type")),
    }
}

/// Writes a command of bulk strings.
pub(super) fn write_command(out: &mut impl Write, args: &[&[u8]]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        buf.extend_from_slice(arg);
        buf.extend_from_slice(b"\r\n");
    }
    out.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Value> {
        read(&mut io::BufReader::new(bytes))
    }

    #[test]
    fn reads_pushes_and_confirmations() {
        let push = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\na\r\nb\n\r\n";
        assert_eq!(
            parse(push).expect("parses"),
            Value::Array(vec![
                Value::Bulk(b"message".to_vec()),
                Value::Bulk(b"ch".to_vec()),
                Value::Bulk(b"a\r\nb\n".to_vec()),
            ])
        );
        let confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert!(matches!(parse(confirm), Ok(Value::Array(v)) if v[2] == Value::Int(1)));
        assert_eq!(
            parse(b"-ERR no\r\n").expect("parses"),
            Value::Error("ERR no".into())
        );
        assert_eq!(parse(b"$-1\r\n").expect("parses"), Value::Nil);
    }

    #[test]
    fn refuses_what_is_not_resp() {
        for bad in [
            &b"?x\r\n"[..],
            b"$5\r\nab\r\n",
            b"$3\r\nabcde",
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
            b"$99999999999\r\n",
            b"*-5\r\n",
            b":x\r\n",
            b"+no end",
            b"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"SUBSCRIBE", b"a b"]).expect("writes");
        assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\na b\r\n");
    }
}
