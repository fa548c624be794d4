//! What the server does with each request, in either framing: binary frames and text
//! commands map onto the same operations, and answers go out in the client's framing.

use std::sync::Arc;

use bytes::Bytes;
use shared::text::{self, Command};
use shared::{ErrorCode, Frame, Mode, PROTOCOL_VERSION};

use crate::connection::Connection;
use crate::hub::{ChatOutcome, ConnId, Membership, Refusal};
use crate::stats::CloseReason;
use crate::worker::{Scope, Worker};

/// The room text-mode clients are put in when they connect.
pub const DEFAULT_ROOM: &str = "lobby";

/// Most entries in one room list or member list; the rest are counted in a notice, so
/// an answer stays a few hundred KiB at most whatever the number of rooms or members.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Cuts `list` to [`MAX_LIST_ITEMS`]; returns how many entries were cut.
fn truncate_list<T>(list: &mut Vec<T>) -> usize {
    let hidden = list.len().saturating_sub(MAX_LIST_ITEMS);
    list.truncate(MAX_LIST_ITEMS);
    hidden
}

impl Worker {
    /// Welcomes a text-mode client and puts it in the default room.
    pub(crate) fn greet_text(&mut self, conn: &mut Connection) {
        let welcome = self.welcome(conn);
        self.reply(conn, &welcome);
        self.join(conn, DEFAULT_ROOM);
    }

    fn welcome(&self, conn: &Connection) -> Frame {
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: u32::try_from(self.shared.config.limits.max_frame).unwrap_or(u32::MAX),
            nick: conn.nick.clone().unwrap_or_default(),
        }
    }

    fn refuse(&mut self, conn: &mut Connection, refusal: Refusal) {
        self.reply(
            conn,
            &Frame::Error {
                code: refusal.code,
                text: refusal.text,
            },
        );
    }

    /// Handles one binary frame.
    pub(crate) fn handle_frame(&mut self, conn: &mut Connection, frame: Frame) {
        if !conn.hello_done {
            match frame {
                Frame::Hello { version } if version == PROTOCOL_VERSION => {
                    conn.hello_done = true;
                    self.register(conn, Mode::Binary);
                    let welcome = self.welcome(conn);
                    self.reply(conn, &welcome);
                }
                Frame::Hello { version } => {
                    let text = format!(
                        "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                    );
                    self.fail(
                        conn,
                        ErrorCode::VERSION_MISMATCH,
                        &text,
                        CloseReason::ProtocolError,
                    );
                }
                _ => self.fail(
                    conn,
                    ErrorCode::HELLO_REQUIRED,
                    "the first frame must be Hello",
                    CloseReason::ProtocolError,
                ),
            }
            return;
        }
        match frame {
            Frame::Echo { payload } => self.echo(conn, payload),
            Frame::Say { room, text } => self.say(conn, &room, text),
            Frame::SetNick { nick } => self.set_nick(conn, &nick),
            Frame::Join { room } => self.join(conn, &room),
            Frame::Leave { room } => self.leave(conn, &room),
            Frame::Direct { to, text } => self.direct(conn, &to, text),
            Frame::ChatRequest { peer } => self.chat_request(conn, &peer),
            Frame::ChatAccept { peer } => self.chat_accept(conn, &peer),
            Frame::ChatEnd => self.chat_end(conn),
            Frame::ChatSay { text } => self.chat_say(conn, text),
            Frame::ListRooms => self.list_rooms(conn),
            Frame::Who { room } => self.who(conn, &room),
            Frame::GetStats => self.send_stats(conn),
            Frame::Ping { token } => self.reply(conn, &Frame::Pong { token }),
            Frame::Pong { .. } => {}
            Frame::Goodbye { .. } => self.goodbye(conn),
            other => {
                let text = format!(
                    "frame type 0x{:02x} is sent by servers, not clients",
                    other.frame_type()
                );
                self.fail(
                    conn,
                    ErrorCode::UNEXPECTED_FRAME,
                    &text,
                    CloseReason::ProtocolError,
                );
            }
        }
    }

    /// Handles one text-mode line.
    pub(crate) fn handle_line(&mut self, conn: &mut Connection, line: &str) {
        let command = match text::parse_command(line) {
            Ok(Some(command)) => command,
            Ok(None) => return,
            Err(e) => {
                self.refuse(
                    conn,
                    Refusal {
                        code: e.code,
                        text: e.message,
                    },
                );
                return;
            }
        };
        match command {
            Command::Say(text) => {
                if self.shared.hub.chat_partner(conn.id).is_some() {
                    self.chat_say(conn, text);
                } else if let Some(room) = conn.current_room.clone() {
                    self.say(conn, &room, text);
                } else {
                    self.refuse(
                        conn,
                        Refusal {
                            code: ErrorCode::NOT_IN_ROOM,
                            text: "you are in no room; /join one first".to_owned(),
                        },
                    );
                }
            }
            Command::Echo(payload) => self.echo(conn, Bytes::from(payload)),
            Command::Nick(nick) => self.set_nick(conn, &nick),
            Command::Join(room) => self.join(conn, &room),
            Command::Leave(room) => match room.or_else(|| conn.current_room.clone()) {
                Some(room) => self.leave(conn, &room),
                None => self.refuse(
                    conn,
                    Refusal {
                        code: ErrorCode::NOT_IN_ROOM,
                        text: "you are in no room".to_owned(),
                    },
                ),
            },
            Command::Rooms => self.list_rooms(conn),
            Command::Who(room) => match room.or_else(|| conn.current_room.clone()) {
                Some(room) => self.who(conn, &room),
                None => self.refuse(
                    conn,
                    Refusal {
                        code: ErrorCode::NOT_IN_ROOM,
                        text: "you are in no room; /who ROOM names one".to_owned(),
                    },
                ),
            },
            Command::Msg { to, text } => self.direct(conn, &to, text),
            Command::Chat(Some(peer)) => self.chat_request(conn, &peer),
            Command::Chat(None) => self.chat_end(conn),
            Command::Stats => self.send_stats(conn),
            Command::Help => {
                for line in text::HELP {
                    self.reply(
                        conn,
                        &Frame::Notice {
                            text: (*line).to_owned(),
                        },
                    );
                }
            }
            Command::Quit => {
                self.reply(
                    conn,
                    &Frame::Goodbye {
                        reason: "bye".to_owned(),
                    },
                );
                self.goodbye(conn);
            }
        }
    }

    fn echo(&mut self, conn: &mut Connection, payload: Bytes) {
        let frame = Frame::EchoReply {
            server_time_ns: shared::time::unix_nanos(),
            payload,
        };
        self.reply(conn, &frame);
    }

    fn goodbye(&mut self, conn: &mut Connection) {
        self.close_after_flush(conn, CloseReason::Goodbye);
    }

    fn say(&mut self, conn: &mut Connection, room: &str, text: String) {
        match self.shared.hub.room_fanout(conn.id, room) {
            Ok((room, fanout)) => {
                let scope = Scope::Room(Arc::from(room.as_str()));
                let frame = Frame::RoomMsg {
                    room,
                    from: conn.nick.clone().unwrap_or_default(),
                    text,
                };
                self.send_fanout(conn, fanout, &frame, scope);
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn set_nick(&mut self, conn: &mut Connection, nick: &str) {
        match self.shared.hub.set_nick(conn.id, nick) {
            Ok(old) => {
                conn.nick = Some(nick.to_owned());
                let frame = Frame::NickChanged {
                    old,
                    new: nick.to_owned(),
                };
                self.reply(conn, &frame);
                let mates = self.shared.hub.room_mates(conn.id, &conn.rooms);
                self.send_fanout(conn, Arc::new(mates), &frame, Scope::Anyone);
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn join(&mut self, conn: &mut Connection, room: &str) {
        let Some(mode) = conn.mode else {
            return;
        };
        match self.shared.hub.join(conn.id, mode, room, conn.rooms.len()) {
            Ok(membership) => {
                if !conn.rooms.contains(&membership.room) {
                    conn.rooms.push(membership.room.clone());
                }
                conn.current_room = Some(membership.room.clone());
                let scope = Scope::Room(Arc::from(membership.room.as_str()));
                let frame = Frame::Joined {
                    room: membership.room,
                    nick: conn.nick.clone().unwrap_or_default(),
                    members: membership.members,
                };
                self.reply(conn, &frame);
                self.send_fanout(conn, Arc::new(membership.notify), &frame, scope);
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn leave(&mut self, conn: &mut Connection, room: &str) {
        match self.shared.hub.leave(conn.id, room) {
            Ok(membership) => {
                conn.rooms.retain(|r| r != &membership.room);
                conn.current_room = conn.rooms.last().cloned();
                let nick = conn.nick.clone().unwrap_or_default();
                let frame = Frame::Left {
                    room: membership.room.clone(),
                    nick,
                    members: membership.members,
                };
                self.reply(conn, &frame);
                self.announce_left(conn, membership);
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn announce_left(&mut self, conn: &mut Connection, membership: Membership) {
        let scope = Scope::Room(Arc::from(membership.room.as_str()));
        let frame = Frame::Left {
            room: membership.room,
            nick: conn.nick.clone().unwrap_or_default(),
            members: membership.members,
        };
        self.send_fanout(conn, Arc::new(membership.notify), &frame, scope);
    }

    fn direct(&mut self, conn: &mut Connection, to: &str, text: String) {
        let Some((target, mode)) = self.shared.hub.lookup(to) else {
            self.refuse(
                conn,
                Refusal {
                    code: ErrorCode::NO_SUCH_NICK,
                    text: format!("no user is called {to}"),
                },
            );
            return;
        };
        let frame = Frame::DirectMsg {
            from: conn.nick.clone().unwrap_or_default(),
            text,
        };
        self.send_to(conn, target, mode, &frame, Scope::Anyone);
    }

    fn chat_request(&mut self, conn: &mut Connection, peer: &str) {
        let outcome = self.shared.hub.chat_request(conn.id, peer);
        self.chat_outcome(conn, peer, outcome);
    }

    fn chat_accept(&mut self, conn: &mut Connection, peer: &str) {
        let outcome = self.shared.hub.chat_accept(conn.id, peer);
        self.chat_outcome(conn, peer, outcome);
    }

    fn chat_outcome(
        &mut self,
        conn: &mut Connection,
        peer_nick: &str,
        outcome: Result<ChatOutcome, Refusal>,
    ) {
        let me = conn.nick.clone().unwrap_or_default();
        match outcome {
            Ok(ChatOutcome::Busy) => {
                let peer = self.display_nick(peer_nick);
                self.reply(conn, &Frame::Busy { peer });
            }
            Ok(ChatOutcome::Requested { peer }) => {
                let peer_name = self.display_nick(peer_nick);
                self.notify(conn, peer, &Frame::ChatRequested { from: me });
                self.reply(
                    conn,
                    &Frame::Notice {
                        text: format!("asked {peer_name} for a private chat"),
                    },
                );
            }
            Ok(ChatOutcome::Started { peer }) => {
                let peer_name = self.display_nick(peer_nick);
                conn.chat_with = Some(peer);
                self.reply(conn, &Frame::ChatStarted { peer: peer_name });
                let started = Frame::ChatStarted { peer: me };
                self.notify_scoped(conn, peer, &started, Scope::ChatStart(conn.id));
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn display_nick(&self, nick: &str) -> String {
        self.shared
            .hub
            .lookup(nick)
            .and_then(|(id, _)| self.shared.hub.user(id))
            .map_or_else(|| nick.to_owned(), |(n, _)| n)
    }

    /// Sends `frame` to user `to` in its framing, if it is still connected.
    fn notify(&mut self, conn: &mut Connection, to: ConnId, frame: &Frame) {
        self.notify_scoped(conn, to, frame, Scope::Anyone);
    }

    /// Sends `frame` to user `to` if it is still connected and, on arrival, in `scope`.
    fn notify_scoped(&mut self, conn: &mut Connection, to: ConnId, frame: &Frame, scope: Scope) {
        if let Some((_, mode)) = self.shared.hub.user(to) {
            self.send_to(conn, to, mode, frame, scope);
        }
    }

    fn chat_end(&mut self, conn: &mut Connection) {
        let ending = self.shared.hub.chat_end(conn.id);
        if ending.partner.is_none() && ending.declined.is_empty() && ending.withdrawn.is_none() {
            self.refuse(
                conn,
                Refusal {
                    code: ErrorCode::NOT_IN_CHAT,
                    text: "you are not in a private chat".to_owned(),
                },
            );
            return;
        }
        let me = conn.nick.clone().unwrap_or_default();
        if let Some(partner) = ending.partner {
            let partner_nick = self.shared.hub.user(partner).map(|(n, _)| n);
            self.notify_scoped(
                conn,
                partner,
                &Frame::ChatEnded {
                    peer: me.clone(),
                    reason: format!("ended by {me}"),
                },
                Scope::ChatEnd(conn.id),
            );
            conn.chat_with = None;
            self.reply(
                conn,
                &Frame::ChatEnded {
                    peer: partner_nick.unwrap_or_default(),
                    reason: "ended by you".to_owned(),
                },
            );
        }
        for asker in ending.declined {
            self.notify(
                conn,
                asker,
                &Frame::ChatEnded {
                    peer: me.clone(),
                    reason: "request declined".to_owned(),
                },
            );
        }
        if let Some(withdrawn) = ending.withdrawn {
            self.notify(
                conn,
                withdrawn,
                &Frame::ChatEnded {
                    peer: me.clone(),
                    reason: "request withdrawn".to_owned(),
                },
            );
        }
    }

    fn chat_say(&mut self, conn: &mut Connection, text: String) {
        match self.shared.hub.chat_partner(conn.id) {
            Some(partner) => {
                let frame = Frame::ChatMsg {
                    from: conn.nick.clone().unwrap_or_default(),
                    text,
                };
                self.notify_scoped(conn, partner, &frame, Scope::Chat(conn.id));
            }
            None => self.refuse(
                conn,
                Refusal {
                    code: ErrorCode::NOT_IN_CHAT,
                    text: "you are not in a private chat".to_owned(),
                },
            ),
        }
    }

    fn list_rooms(&mut self, conn: &mut Connection) {
        let mut rooms = self.shared.hub.list_rooms();
        let hidden = truncate_list(&mut rooms);
        self.reply(conn, &Frame::RoomList { rooms });
        self.tell_hidden(conn, hidden, "rooms");
    }

    fn who(&mut self, conn: &mut Connection, room: &str) {
        match self.shared.hub.who(room) {
            Ok((room, mut nicks)) => {
                let hidden = truncate_list(&mut nicks);
                self.reply(conn, &Frame::WhoList { room, nicks });
                self.tell_hidden(conn, hidden, "members");
            }
            Err(refusal) => self.refuse(conn, refusal),
        }
    }

    fn tell_hidden(&mut self, conn: &mut Connection, hidden: usize, what: &str) {
        if hidden > 0 {
            let text = format!("{hidden} more {what} not listed");
            self.reply(conn, &Frame::Notice { text });
        }
    }

    fn send_stats(&mut self, conn: &mut Connection) {
        let entries = self.shared.stats.snapshot();
        self.reply(conn, &Frame::Stats { entries });
    }

    /// Forgets a closed connection everywhere and tells whoever should know.
    pub(crate) fn announce_departure(&mut self, conn: &mut Connection) {
        let (left, ending) = self.shared.hub.unregister(conn.id, &conn.rooms);
        conn.rooms.clear();
        for membership in left {
            self.announce_left(conn, membership);
        }
        let me = conn.nick.clone().unwrap_or_default();
        let reason = format!("{me} disconnected");
        let mut tell: Vec<ConnId> = ending.declined;
        tell.extend(ending.partner);
        tell.extend(ending.withdrawn);
        for other in tell {
            self.notify_scoped(
                conn,
                other,
                &Frame::ChatEnded {
                    peer: me.clone(),
                    reason: reason.clone(),
                },
                Scope::ChatEnd(conn.id),
            );
        }
    }
}
