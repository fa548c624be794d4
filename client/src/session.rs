//! The client's view of its session, as a state machine without I/O: what a typed line
//! turns into (frames to send, lines to show) and what a received frame changes and
//! shows.
//!
//! Keeping this free of sockets and terminals lets unit tests drive every command and
//! every server frame directly. The caller ([`crate::app`]) sends the frames and prints
//! the lines of each [`Reaction`].
//!
//! The session outlives its connections: [`Session::connection_lost`] and
//! [`Session::reconnected`] carry the rooms, the last message id seen in each and the
//! chosen nick over to the next connection, which takes the nick back and re-joins the
//! rooms one at a time, resuming each.
//!
//! Layout: this file holds the state and what received frames do; `session/input.rs`
//! what typed lines do; `session/reconnect.rs` what carries over a reconnect.

use std::collections::VecDeque;
use std::time::Instant;

use reconnect::{Link, NickClaim};

use bytes::Bytes;
use shared::Frame;
use shared::names::fold;
use shared::text;

use crate::error::ClientError;
use crate::render::{self, Clock};

/// What the caller must do after an input line or a received frame.
#[derive(Debug, Default)]
pub struct Reaction {
    /// Frames to send, in order.
    pub frames: Vec<Frame>,
    /// Lines to show the user, in order, without a time prefix; already escaped.
    pub lines: Vec<String>,
    /// The user asked to leave (`/quit`).
    pub quit: bool,
    /// The server ended the session; the connection is about to close.
    pub ended: Option<ClientError>,
    /// A reconnect finished: every room was re-joined and its replay shown.
    pub reconnected: bool,
}

impl Reaction {
    fn line(line: impl Into<String>) -> Self {
        Reaction {
            lines: vec![line.into()],
            ..Reaction::default()
        }
    }

    fn send(frame: Frame) -> Self {
        Reaction {
            frames: vec![frame],
            ..Reaction::default()
        }
    }
}

/// An `Echo` sent and not answered yet. The server answers echoes in order, so replies
/// are matched front to back.
#[derive(Debug)]
struct PendingEcho {
    payload: Bytes,
    sent_at: Instant,
    sent_unix_ns: u64,
    /// `false` for the end-of-input barrier, whose reply is not shown.
    shown: bool,
}

/// Payload of the echo sent at the end of piped input: once its reply is back, every
/// answer to earlier requests on this connection is back too.
const BARRIER_PAYLOAD: &[u8] = b"\x00chat-drain-barrier";

/// A room we are in (or asked to join), with what we saw of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoomState {
    /// The room's name, in the server's spelling once it answered.
    name: String,
    /// The id of the last message of the room we saw: from `Joined.last`, then from
    /// each `RoomMsg`. `None` until the server answered the join. A reconnect resumes
    /// from it.
    last: Option<u64>,
}

/// A `HistoryPage` whose messages are still arriving.
#[derive(Debug)]
struct HistoryRead {
    /// The room, case-folded.
    room: String,
    /// Messages of the page still to come.
    left: u32,
}

/// Messages `/history` asks for when no number is given.
pub const DEFAULT_HISTORY: u32 = 20;

/// Session state as the client knows it.
#[derive(Debug)]
pub struct Session {
    /// Our nick, as the server last told us.
    me: String,
    /// The nick the user asked for and the server granted: a reconnect takes it back.
    chosen: Option<String>,
    /// Rooms we joined, oldest first; the last one is the current room. Updated when a
    /// request is sent (so lines typed right after `/join` go to the new room, as the
    /// server processes our frames in order) and corrected by the server's answers.
    rooms: Vec<RoomState>,
    /// Whether requests can be sent, and the re-join in progress after a reconnect.
    link: Link,
    /// Taking our nick back after a reconnect.
    claim: NickClaim,
    /// The history page being received, if any.
    history: Option<HistoryRead>,
    /// Our private-chat partner, between `ChatStarted` and `ChatEnded`.
    partner: Option<String>,
    /// Users who asked us for a private chat and got no answer yet (case-folded).
    asked_by: Vec<String>,
    echoes: VecDeque<PendingEcho>,
    /// Requests sent whose answer has not come yet (echoes aside). Any `2xx` error
    /// answers one; it is a best-effort count used only to stop waiting early at the
    /// end of piped input.
    awaiting: usize,
    clock: Clock,
}

impl Session {
    /// A session welcomed under `nick`.
    pub fn new(nick: String, clock: Clock) -> Self {
        Session {
            me: nick,
            chosen: None,
            rooms: Vec::new(),
            link: Link::Online,
            claim: NickClaim::None,
            history: None,
            partner: None,
            asked_by: Vec::new(),
            echoes: VecDeque::new(),
            awaiting: 0,
            clock,
        }
    }

    /// Our nick.
    pub fn nick(&self) -> &str {
        &self.me
    }

    /// The room plain lines go to when not in a private chat.
    pub fn current_room(&self) -> Option<&str> {
        self.rooms.last().map(|r| r.name.as_str())
    }

    /// The id of the last message seen in `room`, if we are in it and the server has
    /// answered the join.
    pub fn last_seen(&self, room: &str) -> Option<u64> {
        self.room(room).and_then(|r| r.last)
    }

    fn room(&self, room: &str) -> Option<&RoomState> {
        let folded = fold(room);
        self.rooms.iter().find(|r| fold(&r.name) == folded)
    }

    fn room_mut(&mut self, room: &str) -> Option<&mut RoomState> {
        let folded = fold(room);
        self.rooms.iter_mut().find(|r| fold(&r.name) == folded)
    }

    /// Our private-chat partner, if any.
    pub fn partner(&self) -> Option<&str> {
        self.partner.as_deref()
    }

    /// The frames that set up the session right after `Welcome`: the wanted nick and
    /// the first room.
    pub fn start(&mut self, nick: Option<&str>, room: Option<&str>) -> Reaction {
        let mut reaction = Reaction::default();
        if let Some(nick) = nick {
            self.awaiting += 1;
            reaction.frames.push(Frame::SetNick {
                nick: nick.to_owned(),
            });
        }
        if let Some(room) = room {
            reaction.frames.extend(self.join(room).frames);
        }
        reaction
    }

    /// Whether every request sent has been answered (or given up on) and no re-join
    /// is in progress.
    pub fn is_idle(&self) -> bool {
        self.echoes.is_empty() && self.awaiting == 0 && matches!(self.link, Link::Online)
    }

    /// The echo to send at the end of piped input: once its (unshown) reply is back,
    /// every answer to earlier requests on this connection is back too.
    pub fn barrier(&mut self) -> Frame {
        let payload = Bytes::from_static(BARRIER_PAYLOAD);
        self.echoes.push_back(PendingEcho {
            payload: payload.clone(),
            sent_at: Instant::now(),
            sent_unix_ns: shared::time::unix_nanos(),
            shown: false,
        });
        Frame::Echo { payload }
    }

    /// Undoes the bookkeeping of a frame from a [`Reaction`] that could not be sent
    /// (too large, a name too long), so no answer is waited for.
    pub fn not_sent(&mut self, frame: &Frame) {
        match frame {
            Frame::Echo { payload } => {
                if let Some(i) = self.echoes.iter().rposition(|e| e.payload == *payload) {
                    self.echoes.remove(i);
                }
            }
            Frame::Say { .. }
            | Frame::SetNick { .. }
            | Frame::Login { .. }
            | Frame::Join { .. }
            | Frame::Leave { .. }
            | Frame::ListRooms
            | Frame::Who { .. }
            | Frame::GetStats
            | Frame::GetHistory { .. }
            | Frame::ChatRequest { .. }
            | Frame::ChatAccept { .. } => self.answered(),
            _ => {}
        }
    }

    fn forget_room(&mut self, room: &str) {
        let folded = fold(room);
        self.rooms.retain(|r| fold(&r.name) != folded);
    }

    fn is_me(&self, nick: &str) -> bool {
        fold(nick) == fold(&self.me)
    }

    fn answered(&mut self) {
        self.awaiting = self.awaiting.saturating_sub(1);
    }

    /// Applies one frame from the server and says what to show and answer.
    pub fn receive(&mut self, frame: Frame) -> Reaction {
        match frame {
            Frame::Ping { token } => Reaction::send(Frame::Pong { token }),
            Frame::Pong { .. } => Reaction::default(),
            Frame::EchoReply {
                server_time_ns,
                payload,
            } => self.echo_reply(server_time_ns, payload),
            Frame::NickChanged { old, new } => {
                let mut reaction = Reaction::default();
                if self.is_me(&old) {
                    if !self.nick_taken_back(&new, &mut reaction) {
                        self.answered();
                    }
                    self.me.clone_from(&new);
                    self.chosen = Some(new.clone());
                }
                let line = render::frame_line(&Frame::NickChanged { old, new });
                reaction.lines.insert(0, line);
                reaction
            }
            Frame::Joined {
                room,
                nick,
                members,
                last,
            } => {
                let line = render::frame_line(&Frame::Joined {
                    room: room.clone(),
                    nick: nick.clone(),
                    members,
                    last,
                });
                if !self.is_me(&nick) {
                    return Reaction::line(line);
                }
                if let Some(reaction) = self.rejoin_joined(&room, last, &line) {
                    return reaction;
                }
                self.answered();
                // Take the server's spelling of the room; keep it current only if
                // no later join made another room current meanwhile.
                match self.room_mut(&room) {
                    Some(r) => {
                        r.name.clone_from(&room);
                        r.last = Some(last);
                    }
                    // Joined without asking (never in binary mode today): the
                    // server made it our current room.
                    None => self.rooms.push(RoomState {
                        name: room,
                        last: Some(last),
                    }),
                }
                Reaction::line(line)
            }
            Frame::Resumed {
                room,
                replayed,
                missed,
            } => self.rejoin_resumed(room, replayed, missed),
            Frame::HistoryPage { room, count, more } => {
                self.answered();
                self.history = (count > 0).then(|| HistoryRead {
                    room: fold(&room).into_owned(),
                    left: count,
                });
                Reaction::line(render::frame_line(&Frame::HistoryPage {
                    room,
                    count,
                    more,
                }))
            }
            Frame::Left {
                room,
                nick,
                members,
            } => {
                if self.is_me(&nick) {
                    self.answered();
                    self.forget_room(&room);
                }
                Reaction::line(render::frame_line(&Frame::Left {
                    room,
                    nick,
                    members,
                }))
            }
            Frame::RoomMsg { .. } => self.room_msg(frame),
            Frame::RoomList { .. } | Frame::WhoList { .. } | Frame::Stats { .. } => {
                self.answered();
                Reaction::line(render::frame_line(&frame))
            }
            Frame::ChatRequested { from } => {
                let folded = fold(&from).into_owned();
                if !self.asked_by.contains(&folded) {
                    self.asked_by.push(folded);
                }
                Reaction::line(render::frame_line(&Frame::ChatRequested { from }))
            }
            Frame::ChatStarted { peer } => {
                // Started by our request or accept, or by the peer accepting ours.
                self.answered();
                let folded = fold(&peer).into_owned();
                self.asked_by.retain(|n| *n != folded);
                self.partner = Some(peer.clone());
                Reaction::line(render::frame_line(&Frame::ChatStarted { peer }))
            }
            Frame::ChatEnded { peer, reason } => {
                if self
                    .partner
                    .as_deref()
                    .is_some_and(|p| fold(p) == fold(&peer))
                {
                    self.partner = None;
                }
                let folded = fold(&peer).into_owned();
                self.asked_by.retain(|n| *n != folded);
                Reaction::line(render::frame_line(&Frame::ChatEnded { peer, reason }))
            }
            Frame::Busy { .. } | Frame::Notice { .. } => {
                self.answered();
                Reaction::line(render::frame_line(&frame))
            }
            Frame::Error { code, text } => {
                if let Some(reaction) = self.reconnect_error(code, &text) {
                    return reaction;
                }
                let line = render::frame_line(&Frame::Error {
                    code,
                    text: text.clone(),
                });
                if code.closes_connection() {
                    let mut reaction = Reaction::line(line);
                    reaction.ended = Some(ClientError::Refused {
                        code,
                        text: text::escape(&text).into_owned(),
                    });
                    return reaction;
                }
                // It may answer a `/msg`, which is not counted: then another count
                // drops early, but the end-of-input barrier still keeps us waiting
                // until every answer sent before it is in.
                self.answered();
                Reaction::line(line)
            }
            Frame::Shutdown { reason } => {
                let mut reaction = Reaction::line(render::frame_line(&Frame::Shutdown {
                    reason: reason.clone(),
                }));
                reaction.ended = Some(ClientError::ServerShutdown {
                    reason: text::escape(&reason).into_owned(),
                });
                reaction
            }
            Frame::Goodbye { reason } => Reaction {
                ended: Some(ClientError::ConnectionLost {
                    reason: format!("the server said goodbye: {}", text::escape(&reason)),
                }),
                ..Reaction::default()
            },
            other => Reaction::line(render::frame_line(&other)),
        }
    }

    /// A room message: part of a history page, of a replay, or live.
    fn room_msg(&mut self, frame: Frame) -> Reaction {
        let Frame::RoomMsg { room, from, id, .. } = &frame else {
            return Reaction::default();
        };
        if let Some(page) = &mut self.history
            && page.room == fold(room)
        {
            // Old messages, already seen or from before we joined: no id to track.
            page.left -= 1;
            if page.left == 0 {
                self.history = None;
            }
            return Reaction::line(render::history_line(&self.clock, &frame));
        }
        if self.is_me(from) {
            self.answered();
        }
        let id = *id;
        let line = render::frame_line(&frame);
        // Id 0: said on a cluster node cut off from the others; never kept, so no
        // place to resume from.
        if let Some(r) = self.room_mut(room)
            && id != 0
        {
            r.last = Some(id);
        }
        let mut reaction = Reaction::line(line);
        self.rejoin_replayed(room, &mut reaction);
        reaction
    }

    fn echo_reply(&mut self, server_time_ns: u64, payload: Bytes) -> Reaction {
        let received_at = Instant::now();
        let received_unix_ns = shared::time::unix_nanos();
        let matched = match self.echoes.front() {
            Some(front) if front.payload == payload => self.echoes.pop_front(),
            _ => None,
        };
        let Some(pending) = matched else {
            return Reaction::line(format!(
                "* echo reply nobody asked for: {}",
                render::payload(&payload)
            ));
        };
        if !pending.shown {
            return Reaction::default();
        }
        Reaction::line(render::echo_line(
            &self.clock,
            &payload,
            pending.sent_unix_ns,
            server_time_ns,
            received_unix_ns,
            received_at.saturating_duration_since(pending.sent_at),
        ))
    }
}

mod input;
mod reconnect;
#[cfg(test)]
mod reconnect_tests;
#[cfg(test)]
mod tests;
