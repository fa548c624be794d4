//! Typed lines: what each command sends and shows. Lines that would send something
//! are refused while the connection is down or a reconnect is re-joining rooms.

use std::time::Instant;

use bytes::Bytes;
use shared::Frame;
use shared::names::fold;
use shared::text::{self, Command};

use super::reconnect::{Link, NickClaim};
use super::{DEFAULT_HISTORY, PendingEcho, Reaction, RoomState, Session};

impl Session {
    /// Turns one typed line into frames and local output.
    pub fn input(&mut self, line: &str) -> Reaction {
        let command = match text::parse_command(line) {
            Ok(Some(command)) => command,
            Ok(None) => return Reaction::default(),
            Err(e) => return Reaction::line(format!("! {}", text::escape(&e.message))),
        };
        if !matches!(self.link, Link::Online) && !matches!(command, Command::Help | Command::Quit) {
            return Reaction::line("! not sent: not connected (reconnecting)");
        }
        match command {
            Command::Say(text) => self.say(text),
            Command::Nick(nick) => {
                // The user's choice wins over taking the old nick back.
                self.claim = NickClaim::None;
                self.awaiting += 1;
                Reaction::send(Frame::SetNick { nick })
            }
            Command::Join(room) => self.join(&room),
            Command::Leave(room) => match room.or_else(|| self.current_room().map(str::to_owned)) {
                Some(room) => {
                    self.forget_room(&room);
                    self.awaiting += 1;
                    Reaction::send(Frame::Leave { room })
                }
                None => Reaction::line("! you are in no room"),
            },
            Command::Rooms => {
                self.awaiting += 1;
                Reaction::send(Frame::ListRooms)
            }
            Command::Who(room) => match room.or_else(|| self.current_room().map(str::to_owned)) {
                Some(room) => {
                    self.awaiting += 1;
                    Reaction::send(Frame::Who { room })
                }
                None => Reaction::line("! you are in no room; /who ROOM names one"),
            },
            Command::Msg { to, text } => Reaction {
                lines: vec![format!(
                    "[dm] -> {}: {}",
                    text::escape(&to),
                    text::escape(&text)
                )],
                frames: vec![Frame::Direct { to, text }],
                ..Reaction::default()
            },
            Command::Chat(Some(peer)) => {
                // The server answers a request with a notice (or BUSY, or an error) and
                // an accept with `ChatStarted` (or an error): one answer either way.
                self.awaiting += 1;
                let folded = fold(&peer).into_owned();
                if let Some(i) = self.asked_by.iter().position(|n| *n == folded) {
                    self.asked_by.remove(i);
                    Reaction::send(Frame::ChatAccept { peer })
                } else {
                    Reaction::send(Frame::ChatRequest { peer })
                }
            }
            Command::Chat(None) => {
                self.asked_by.clear();
                Reaction::send(Frame::ChatEnd)
            }
            Command::Echo(payload) => {
                let payload = Bytes::from(payload);
                self.echoes.push_back(PendingEcho {
                    payload: payload.clone(),
                    sent_at: Instant::now(),
                    sent_unix_ns: shared::time::unix_nanos(),
                    shown: true,
                });
                Reaction::send(Frame::Echo { payload })
            }
            Command::History { room, count } => {
                match room.or_else(|| self.current_room().map(str::to_owned)) {
                    Some(room) => {
                        self.awaiting += 1;
                        let count = count.unwrap_or(DEFAULT_HISTORY);
                        Reaction::send(Frame::GetHistory {
                            room,
                            before: 0,
                            limit: u16::try_from(count).unwrap_or(u16::MAX),
                        })
                    }
                    None => Reaction::line("! you are in no room; /history ROOM names one"),
                }
            }
            Command::Login { nick, password } => {
                // Logging in names the nick the user wants, as `/nick` does.
                self.claim = NickClaim::None;
                self.awaiting += 1;
                Reaction::send(Frame::Login { nick, password })
            }
            Command::Stats => {
                self.awaiting += 1;
                Reaction::send(Frame::GetStats)
            }
            Command::Help => Reaction {
                lines: text::HELP.iter().map(|l| format!("* {l}")).collect(),
                ..Reaction::default()
            },
            Command::Quit => Reaction {
                quit: true,
                ..Reaction::default()
            },
        }
    }

    fn say(&mut self, text: String) -> Reaction {
        if self.partner.is_some() {
            // The server does not send our own private-chat lines back, so show them.
            let line = format!(
                "[chat] <{}> {}",
                text::escape(&self.me),
                text::escape(&text)
            );
            return Reaction {
                lines: vec![line],
                frames: vec![Frame::ChatSay { text }],
                ..Reaction::default()
            };
        }
        match self.current_room() {
            // Our own line is shown when the server sends it back to the room.
            Some(room) => {
                let room = room.to_owned();
                self.awaiting += 1;
                Reaction::send(Frame::Say { room, text })
            }
            None => Reaction::line("! you are in no room; /join ROOM first"),
        }
    }

    pub(super) fn join(&mut self, room: &str) -> Reaction {
        self.forget_room(room);
        self.rooms.push(RoomState {
            name: room.to_owned(),
            last: None,
        });
        self.awaiting += 1;
        Reaction::send(Frame::Join {
            room: room.to_owned(),
            since: None,
        })
    }
}
