//! Typed errors of decoding and encoding.

use crate::frame::ErrorCode;

/// Why bytes from a peer could not be turned into a frame or a line.
///
/// Every variant is a protocol violation: the peer sent something this protocol does not
/// allow, and a server answers with [`DecodeError::code`] and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame's length prefix is larger than the configured maximum. Raise the limit
    /// (`--max-frame`) on both sides if such frames are legitimate.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length (type byte plus body).
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A frame's length prefix is zero, so it cannot even hold its type byte.
    #[error("frame length 0 cannot hold a type byte")]
    EmptyFrame,
    /// A text line passed the configured maximum before its newline arrived.
    #[error("line exceeds the limit of {max} bytes")]
    LineTooLong {
        /// Configured maximum, newline excluded.
        max: usize,
    },
    /// Text that must be UTF-8 is not.
    #[error("invalid UTF-8 after {valid_up_to} valid bytes{}", frame_type.map(|t| format!(" in frame type 0x{t:02x}")).unwrap_or_default())]
    InvalidUtf8 {
        /// Frame type, or `None` for a text-mode line.
        frame_type: Option<u8>,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A frame type code that this protocol version does not define.
    #[error("unknown frame type 0x{frame_type:02x}")]
    UnknownType {
        /// The offending code.
        frame_type: u8,
    },
    /// A frame body whose fields do not fit its length (or that has bytes left over).
    #[error("malformed frame of type 0x{frame_type:02x}: {reason}")]
    Malformed {
        /// Frame type.
        frame_type: u8,
        /// What did not fit.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The protocol error code a server reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            DecodeError::EmptyFrame | DecodeError::Malformed { .. } => ErrorCode::MALFORMED,
            DecodeError::LineTooLong { .. } => ErrorCode::LINE_TOO_LONG,
            DecodeError::InvalidUtf8 { .. } => ErrorCode::INVALID_UTF8,
            DecodeError::UnknownType { .. } => ErrorCode::UNKNOWN_TYPE,
        }
    }
}

/// Why a frame could not be encoded. Only over-long fields can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A length-prefixed field (a name, or a list) is longer than its prefix can say.
    /// Names are limited to 255 bytes and lists to 65535 items.
    #[error("{field} is {len} long, the wire format allows at most {max}")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The largest the wire format allows.
        max: usize,
    },
    /// The whole frame is longer than a `u32` length prefix can say.
    #[error("frame of {len} bytes does not fit a u32 length prefix")]
    FrameTooLarge {
        /// Encoded length.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decode_error_maps_to_a_closing_code() {
        let cases = [
            (
                DecodeError::FrameTooLarge { len: 9, max: 8 },
                ErrorCode::FRAME_TOO_LARGE,
                "frame of 9 bytes exceeds the limit of 8 bytes",
            ),
            (
                DecodeError::EmptyFrame,
                ErrorCode::MALFORMED,
                "frame length 0 cannot hold a type byte",
            ),
            (
                DecodeError::LineTooLong { max: 4096 },
                ErrorCode::LINE_TOO_LONG,
                "line exceeds the limit of 4096 bytes",
            ),
            (
                DecodeError::InvalidUtf8 {
                    frame_type: Some(0x05),
                    valid_up_to: 3,
                },
                ErrorCode::INVALID_UTF8,
                "invalid UTF-8 after 3 valid bytes in frame type 0x05",
            ),
            (
                DecodeError::InvalidUtf8 {
                    frame_type: None,
                    valid_up_to: 0,
                },
                ErrorCode::INVALID_UTF8,
                "invalid UTF-8 after 0 valid bytes",
            ),
            (
                DecodeError::UnknownType { frame_type: 0xee },
                ErrorCode::UNKNOWN_TYPE,
                "unknown frame type 0xee",
            ),
            (
                DecodeError::Malformed {
                    frame_type: 0x01,
                    reason: "truncated u16 field",
                },
                ErrorCode::MALFORMED,
                "malformed frame of type 0x01: truncated u16 field",
            ),
        ];
        for (error, code, message) in cases {
            assert_eq!(error.code(), code);
            assert!(code.closes_connection());
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn encode_errors_explain_the_limit() {
        let e = EncodeError::FieldTooLong {
            field: "nick",
            len: 300,
            max: 255,
        };
        assert_eq!(
            e.to_string(),
            "nick is 300 long, the wire format allows at most 255"
        );
    }
}
