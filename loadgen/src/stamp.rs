//! The stamp every load message carries: who sent it, its sequence number, when it was
//! meant to leave and when it did, and a checksum over the whole payload.
//!
//! Two encodings of the same fields:
//! - binary (inside `Echo` payloads), 32 bytes, big-endian:
//!   `client u32 | seq u32 | scheduled_ns u64 | sent_ns u64 | checksum u64`, then filler
//!   bytes cycling through all 256 values so a server that is not binary-safe is caught;
//! - ASCII (text lines, `Say` and `Direct` texts, which must be UTF-8 without newlines),
//!   57 bytes: `L`, then lower-case hex `client:8 seq:8 scheduled_ns:12 sent_ns:12
//!   checksum:16`, then filler letters `a..z`.
//!
//! Times are nanoseconds on the run's monotonic clock (see [`crate::clock`]), so 48 bits
//! (78 hours) suffice. The checksum is FNV-1a over 64-bit words of every payload byte
//! except the checksum field itself; each step is a bijection of the state, so any change
//! confined to one word is always detected.

/// Smallest payload: room for either stamp encoding, rounded up.
pub const MIN_PAYLOAD: usize = 64;

/// Length of the binary stamp.
pub const BINARY_STAMP_LEN: usize = 32;

/// Length of the ASCII stamp.
pub const ASCII_STAMP_LEN: usize = 57;

/// First byte of an ASCII stamp.
pub const ASCII_MARKER: u8 = b'L';

/// Bytes of the binary stamp covered by the checksum (everything before it).
const BINARY_SUMMED: usize = 24;
/// Bytes of the ASCII stamp covered by the checksum (everything before it).
const ASCII_SUMMED: usize = 41;
/// Largest time an ASCII stamp can hold (12 hex digits).
const MAX_ASCII_TIME: u64 = (1 << 48) - 1;

/// The fields of a stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Global id of the sending client.
    pub client: u32,
    /// The sender's sequence number of this message.
    pub seq: u32,
    /// When the schedule meant the message to leave (ns on the run clock).
    pub scheduled_ns: u64,
    /// When the message was handed to the connection (ns on the run clock).
    pub sent_ns: u64,
}

/// Why a payload is not a valid stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// Shorter than the stamp: the peer truncated it.
    #[error("payload of {len} bytes is shorter than a stamp")]
    Short {
        /// Bytes received.
        len: usize,
    },
    /// An ASCII stamp without its marker or with non-hex digits.
    #[error("payload is not an ASCII stamp")]
    NotAscii,
    /// The checksum does not match: some byte changed on the way.
    #[error("checksum mismatch")]
    Checksum,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over 64-bit little-endian words, continuing from `state`.
fn checksum(mut state: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        state = (state ^ u64::from_le_bytes(w)).wrapping_mul(FNV_PRIME);
    }
    for &b in words.remainder() {
        state = (state ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    state
}

fn binary_filler(seq: u32, i: usize) -> u8 {
    (seq as u8).wrapping_add(i as u8)
}

fn ascii_filler(seq: u32, i: usize) -> u8 {
    b'a' + ((seq as usize + i) % 26) as u8
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut [u8], value: u64) {
    let digits = out.len();
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((value >> shift) & 0xf) as usize];
    }
}

fn parse_hex(digits: &[u8]) -> Result<u64, StampError> {
    let mut value = 0u64;
    for &d in digits {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return Err(StampError::NotAscii),
        };
        value = (value << 4) | u64::from(nibble);
    }
    Ok(value)
}

impl Stamp {
    /// Appends the binary encoding padded with filler to `len` bytes (at least
    /// [`BINARY_STAMP_LEN`]).
    pub fn put_binary(&self, len: usize, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&self.client.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.scheduled_ns.to_be_bytes());
        out.extend_from_slice(&self.sent_ns.to_be_bytes());
        out.extend_from_slice(&[0u8; 8]);
        out.extend((0..len.saturating_sub(BINARY_STAMP_LEN)).map(|i| binary_filler(self.seq, i)));
        let sum = checksum(
            checksum(FNV_OFFSET, &out[at..at + BINARY_SUMMED]),
            &out[at + BINARY_STAMP_LEN..],
        );
        out[at + BINARY_SUMMED..at + BINARY_STAMP_LEN].copy_from_slice(&sum.to_be_bytes());
    }

    /// Decodes and checks a binary stamp (with its filler).
    pub fn from_binary(payload: &[u8]) -> Result<Stamp, StampError> {
        let Some(head) = payload.get(..BINARY_STAMP_LEN) else {
            return Err(StampError::Short { len: payload.len() });
        };
        let u32_at =
            |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let filler = &payload[BINARY_STAMP_LEN..];
        let sum = checksum(checksum(FNV_OFFSET, &head[..BINARY_SUMMED]), filler);
        if sum != u64_at(24) {
            return Err(StampError::Checksum);
        }
        Ok(Stamp {
            client: u32_at(0),
            seq: u32_at(4),
            scheduled_ns: u64_at(8),
            sent_ns: u64_at(16),
        })
    }

    /// Appends the ASCII encoding padded with filler letters to `len` bytes (at least
    /// [`ASCII_STAMP_LEN`]). Times above 48 bits are clamped.
    pub fn put_ascii(&self, len: usize, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + ASCII_STAMP_LEN, 0);
        let head = &mut out[at..];
        head[0] = ASCII_MARKER;
        put_hex(&mut head[1..9], u64::from(self.client));
        put_hex(&mut head[9..17], u64::from(self.seq));
        put_hex(&mut head[17..29], self.scheduled_ns.min(MAX_ASCII_TIME));
        put_hex(&mut head[29..41], self.sent_ns.min(MAX_ASCII_TIME));
        out.extend((0..len.saturating_sub(ASCII_STAMP_LEN)).map(|i| ascii_filler(self.seq, i)));
        let sum = checksum(
            checksum(FNV_OFFSET, &out[at..at + ASCII_SUMMED]),
            &out[at + ASCII_STAMP_LEN..],
        );
        put_hex(&mut out[at + ASCII_SUMMED..at + ASCII_STAMP_LEN], sum);
    }

    /// Decodes and checks an ASCII stamp (with its filler).
    pub fn from_ascii(text: &[u8]) -> Result<Stamp, StampError> {
        let Some(head) = text.get(..ASCII_STAMP_LEN) else {
            return Err(StampError::Short { len: text.len() });
        };
        if head[0] != ASCII_MARKER {
            return Err(StampError::NotAscii);
        }
        let client = parse_hex(&head[1..9])? as u32;
        let seq = parse_hex(&head[9..17])? as u32;
        let scheduled_ns = parse_hex(&head[17..29])?;
        let sent_ns = parse_hex(&head[29..41])?;
        let expected = parse_hex(&head[41..57])?;
        let sum = checksum(
            checksum(FNV_OFFSET, &head[..ASCII_SUMMED]),
            &text[ASCII_STAMP_LEN..],
        );
        if sum != expected {
            return Err(StampError::Checksum);
        }
        Ok(Stamp {
            client,
            seq,
            scheduled_ns,
            sent_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stamp {
        Stamp {
            client: 0xdead_beef,
            seq: 77,
            scheduled_ns: 12_345_678_901,
            sent_ns: 12_345_999_999,
        }
    }

    #[test]
    fn binary_round_trip_at_many_lengths() {
        for len in [BINARY_STAMP_LEN, 33, 64, 255, 256, 257, 1000, 70_000] {
            let mut out = Vec::new();
            sample().put_binary(len, &mut out);
            assert_eq!(out.len(), len);
            assert_eq!(Stamp::from_binary(&out), Ok(sample()));
        }
    }

    #[test]
    fn binary_filler_covers_every_byte_value() {
        let mut out = Vec::new();
        sample().put_binary(BINARY_STAMP_LEN + 256, &mut out);
        let mut seen = [false; 256];
        for &b in &out[BINARY_STAMP_LEN..] {
            seen[usize::from(b)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn ascii_round_trip_is_printable_ascii() {
        for len in [ASCII_STAMP_LEN, 64, 300, 4000] {
            let mut out = Vec::new();
            sample().put_ascii(len, &mut out);
            assert_eq!(out.len(), len);
            assert!(out.iter().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(out[0], ASCII_MARKER);
            assert_eq!(Stamp::from_ascii(&out), Ok(sample()));
        }
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let mut bin = Vec::new();
        sample().put_binary(100, &mut bin);
        for i in 0..bin.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = bin.clone();
                bad[i] ^= flip;
                assert!(
                    Stamp::from_binary(&bad).is_err(),
                    "binary byte {i} ^ {flip:#x}"
                );
            }
        }
        let mut ascii = Vec::new();
        sample().put_ascii(100, &mut ascii);
        for i in 0..ascii.len() {
            let mut bad = ascii.clone();
            bad[i] = if bad[i] == b'a' { b'b' } else { b'a' };
            assert!(Stamp::from_ascii(&bad).is_err(), "ascii byte {i}");
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let mut bin = Vec::new();
        sample().put_binary(64, &mut bin);
        assert_eq!(
            Stamp::from_binary(&bin[..10]),
            Err(StampError::Short { len: 10 })
        );
        assert_eq!(Stamp::from_binary(&bin[..63]), Err(StampError::Checksum));
        assert_eq!(
            Stamp::from_ascii(b"hello"),
            Err(StampError::Short { len: 5 })
        );
        assert_eq!(Stamp::from_ascii(&[b'x'; 60]), Err(StampError::NotAscii));
        let mut not_hex = vec![b'L'];
        not_hex.extend_from_slice(&[b'z'; 60]);
        assert_eq!(Stamp::from_ascii(&not_hex), Err(StampError::NotAscii));
    }
}
