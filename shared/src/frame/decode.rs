//! Decoding: a frame from its type code and body, and a whole encoded frame.

use bytes::Bytes;

use super::wire::BodyReader;
use super::{ErrorCode, Frame, LEN_PREFIX, RoomInfo, types};
use crate::error::DecodeError;
use crate::secret::Password;

impl Frame {
    /// Decodes one whole encoded frame, length prefix included, as [`Frame::to_bytes`]
    /// made it.
    pub fn from_encoded(encoded: &Bytes) -> Result<Frame, DecodeError> {
        let (Some(prefix), Some(&frame_type)) =
            (encoded.get(..LEN_PREFIX), encoded.get(LEN_PREFIX))
        else {
            return Err(DecodeError::EmptyFrame);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len != encoded.len() - LEN_PREFIX {
            return Err(DecodeError::Malformed {
                frame_type,
                reason: "length prefix does not match the frame",
            });
        }
        Frame::decode(frame_type, encoded.slice(LEN_PREFIX + 1..))
    }

    /// Decodes a frame from its type code and body (everything after the type byte).
    ///
    /// The body must be exactly one frame's worth: trailing bytes are an error.
    pub fn decode(frame_type: u8, body: Bytes) -> Result<Frame, DecodeError> {
        use types::*;
        let mut r = BodyReader {
            frame_type,
            buf: body,
        };
        let frame = match frame_type {
            HELLO => Frame::Hello { version: r.u16()? },
            SET_NICK => Frame::SetNick { nick: r.str8()? },
            JOIN => Frame::Join {
                room: r.str8()?,
                since: if r.buf.is_empty() {
                    None
                } else {
                    Some(r.u64()?)
                },
            },
            LEAVE => Frame::Leave { room: r.str8()? },
            SAY => Frame::Say {
                room: r.str8()?,
                text: r.rest_text()?,
            },
            DIRECT => Frame::Direct {
                to: r.str8()?,
                text: r.rest_text()?,
            },
            CHAT_REQUEST => Frame::ChatRequest { peer: r.str8()? },
            CHAT_ACCEPT => Frame::ChatAccept { peer: r.str8()? },
            CHAT_END => Frame::ChatEnd,
            CHAT_SAY => Frame::ChatSay {
                text: r.rest_text()?,
            },
            ECHO => Frame::Echo {
                payload: r.rest_bytes(),
            },
            LIST_ROOMS => Frame::ListRooms,
            WHO => Frame::Who { room: r.str8()? },
            GET_STATS => Frame::GetStats,
            GET_HISTORY => Frame::GetHistory {
                room: r.str8()?,
                before: r.u64()?,
                limit: r.u16()?,
            },
            LOGIN => Frame::Login {
                nick: r.str8()?,
                password: Password::new(r.rest_text()?),
            },
            PING => Frame::Ping { token: r.u64()? },
            PONG => Frame::Pong { token: r.u64()? },
            GOODBYE => Frame::Goodbye {
                reason: r.rest_text()?,
            },
            WELCOME => Frame::Welcome {
                version: r.u16()?,
                max_frame: r.u32()?,
                nick: r.str8()?,
            },
            NICK_CHANGED => Frame::NickChanged {
                old: r.str8()?,
                new: r.str8()?,
            },
            JOINED => Frame::Joined {
                room: r.str8()?,
                nick: r.str8()?,
                members: r.u32()?,
                last: r.u64()?,
            },
            LEFT => Frame::Left {
                room: r.str8()?,
                nick: r.str8()?,
                members: r.u32()?,
            },
            ROOM_LIST => {
                let count = r.u16()?;
                // Each entry is at least 5 bytes; never trust `count` for allocation.
                let mut rooms = Vec::with_capacity(usize::from(count).min(r.buf.len() / 5));
                for _ in 0..count {
                    rooms.push(RoomInfo {
                        name: r.str8()?,
                        members: r.u32()?,
                    });
                }
                Frame::RoomList { rooms }
            }
            WHO_LIST => {
                let room = r.str8()?;
                let count = r.u16()?;
                let mut nicks = Vec::with_capacity(usize::from(count).min(r.buf.len()));
                for _ in 0..count {
                    nicks.push(r.str8()?);
                }
                Frame::WhoList { room, nicks }
            }
            ROOM_MSG => Frame::RoomMsg {
                room: r.str8()?,
                from: r.str8()?,
                id: r.u64()?,
                time_ns: r.u64()?,
                text: r.rest_text()?,
            },
            DIRECT_MSG => Frame::DirectMsg {
                from: r.str8()?,
                text: r.rest_text()?,
            },
            CHAT_REQUESTED => Frame::ChatRequested { from: r.str8()? },
            CHAT_STARTED => Frame::ChatStarted { peer: r.str8()? },
            CHAT_ENDED => Frame::ChatEnded {
                peer: r.str8()?,
                reason: r.rest_text()?,
            },
            BUSY => Frame::Busy { peer: r.str8()? },
            CHAT_MSG => Frame::ChatMsg {
                from: r.str8()?,
                text: r.rest_text()?,
            },
            ECHO_REPLY => Frame::EchoReply {
                server_time_ns: r.u64()?,
                payload: r.rest_bytes(),
            },
            STATS => {
                let count = r.u16()?;
                let mut entries = Vec::with_capacity(usize::from(count).min(r.buf.len() / 9));
                for _ in 0..count {
                    entries.push((r.str8()?, r.u64()?));
                }
                Frame::Stats { entries }
            }
            ERROR => Frame::Error {
                code: ErrorCode(r.u16()?),
                text: r.rest_text()?,
            },
            SHUTDOWN => Frame::Shutdown {
                reason: r.rest_text()?,
            },
            NOTICE => Frame::Notice {
                text: r.rest_text()?,
            },
            HISTORY_PAGE => Frame::HistoryPage {
                room: r.str8()?,
                count: r.u32()?,
                more: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(r.short("more is neither 0 nor 1")),
                },
            },
            RESUMED => Frame::Resumed {
                room: r.str8()?,
                replayed: r.u32()?,
                missed: r.u64()?,
            },
            other => return Err(DecodeError::UnknownType { frame_type: other }),
        };
        r.finish()?;
        Ok(frame)
    }
}
