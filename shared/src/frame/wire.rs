//! The body field encodings shared by every frame: `str8` names, `u16` counts, and
//! a reader that takes a body's fields front to back.

use bytes::{BufMut, Bytes, BytesMut};

use super::MAX_STR8;
use crate::error::{DecodeError, EncodeError};

pub(super) fn put_str8(
    out: &mut BytesMut,
    s: &str,
    field: &'static str,
) -> Result<(), EncodeError> {
    let Ok(len) = u8::try_from(s.len()) else {
        return Err(EncodeError::FieldTooLong {
            field,
            len: s.len(),
            max: MAX_STR8,
        });
    };
    out.put_u8(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

pub(super) fn put_count(
    out: &mut BytesMut,
    count: usize,
    field: &'static str,
) -> Result<(), EncodeError> {
    let Ok(count16) = u16::try_from(count) else {
        return Err(EncodeError::FieldTooLong {
            field,
            len: count,
            max: usize::from(u16::MAX),
        });
    };
    out.put_u16(count16);
    Ok(())
}

/// Reads the fields of one frame body front to back.
pub(super) struct BodyReader {
    pub(super) frame_type: u8,
    pub(super) buf: Bytes,
}

impl BodyReader {
    pub(super) fn short(&self, field: &'static str) -> DecodeError {
        DecodeError::Malformed {
            frame_type: self.frame_type,
            reason: field,
        }
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let Some(head) = self.buf.get(..N) else {
            return Err(self.short(field));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        let _ = self.buf.split_to(N);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.take::<1>("truncated u8 field").map(|[b]| b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.take::<2>("truncated u16 field")
            .map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take::<4>("truncated u32 field")
            .map(u32::from_be_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.take::<8>("truncated u64 field")
            .map(u64::from_be_bytes)
    }

    pub(super) fn str8(&mut self) -> Result<String, DecodeError> {
        let [len] = self.take::<1>("missing string length")?;
        let len = usize::from(len);
        if self.buf.len() < len {
            return Err(self.short("string longer than the frame"));
        }
        let raw = self.buf.split_to(len);
        utf8(self.frame_type, &raw)
    }

    pub(super) fn rest_text(&mut self) -> Result<String, DecodeError> {
        let raw = std::mem::take(&mut self.buf);
        utf8(self.frame_type, &raw)
    }

    pub(super) fn rest_bytes(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    pub(super) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.short("trailing bytes after the last field"))
        }
    }
}

pub(super) fn utf8(frame_type: u8, raw: &[u8]) -> Result<String, DecodeError> {
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(DecodeError::InvalidUtf8 {
            frame_type: Some(frame_type),
            valid_up_to: e.valid_up_to(),
        }),
    }
}
