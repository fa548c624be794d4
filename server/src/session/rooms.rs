//! Room requests: join (and resume), leave, say, history, and the room and member
//! lists.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use shared::{ErrorCode, Frame, Mode, RoomInfo};

use super::{
    Context, DEFAULT_HISTORY_PAGE, Effect, Held, MAX_HISTORY_PAGE, MAX_LIST_ITEMS, Scope, Session,
    refuse, tell_hidden,
};
use crate::engine::{Ask, Listing, Membership, Page, Refusal};

impl Session {
    pub(super) fn join(
        &mut self,
        ctx: &Context<'_>,
        room: &str,
        since: Option<u64>,
        out: &mut Vec<Effect>,
    ) {
        if let Some(remote) = ctx.engine.remote() {
            let room = room.to_owned();
            return self.ask(remote, Ask::Join { room, since }, out);
        }
        self.joined(ctx.engine.join(self.id, room, since), out);
    }

    /// Finishes a join with the engine's answer.
    pub(super) fn joined(
        &mut self,
        membership: Result<Membership, Refusal>,
        out: &mut Vec<Effect>,
    ) {
        let membership = match membership {
            Ok(membership) => membership,
            Err(refusal) => return refuse(out, refusal),
        };
        let room = membership.room;
        // The joined room becomes the current one, also when already held.
        self.rooms.retain(|held| held.room.id != room.id);
        self.rooms.push(Held {
            room: room.clone(),
            epoch: membership.epoch,
        });
        let frame = Frame::Joined {
            room: room.name.to_string(),
            nick: self.nick.clone(),
            members: membership.members,
            last: membership.last,
        };
        out.push(Effect::Reply(frame.clone()));
        if let Some(replay) = membership.replay {
            out.push(Effect::Reply(Frame::Resumed {
                room: room.name.to_string(),
                replayed: u32::try_from(replay.messages.len()).unwrap_or(u32::MAX),
                missed: replay.missed,
            }));
            self.reply_kept(replay.messages, out);
        }
        out.extend(membership.arrived.into_iter().map(Effect::Reply));
        if !membership.notify.is_empty() {
            out.push(Effect::Fanout {
                fanout: Arc::new(membership.notify),
                frame,
                scope: Scope::Room(room.id),
            });
        }
    }

    pub(super) fn leave(&mut self, ctx: &Context<'_>, room: &str, out: &mut Vec<Effect>) {
        let membership = match ctx.engine.leave(self.id, room) {
            Ok(membership) => membership,
            Err(refusal) => return refuse(out, refusal),
        };
        self.rooms.retain(|held| held.room.id != membership.room.id);
        let frame = Frame::Left {
            room: membership.room.name.to_string(),
            nick: self.nick.clone(),
            members: membership.members,
        };
        out.push(Effect::Reply(frame.clone()));
        if !membership.notify.is_empty() {
            out.push(Effect::Fanout {
                fanout: Arc::new(membership.notify),
                frame,
                scope: Scope::Room(membership.room.id),
            });
        }
    }

    pub(super) fn say(&self, ctx: &Context<'_>, room: &str, text: String, out: &mut Vec<Effect>) {
        if let Err(refusal) = ctx
            .engine
            .publish(self.id, room, &self.nick, text, ctx.outlet)
        {
            refuse(out, refusal);
        }
    }

    /// A page of `room`'s history: a `HistoryPage` and the messages after it.
    pub(super) fn history(
        &self,
        ctx: &Context<'_>,
        room: &str,
        before: u64,
        limit: Option<u32>,
        out: &mut Vec<Effect>,
    ) {
        let limit = limit.unwrap_or(DEFAULT_HISTORY_PAGE).min(MAX_HISTORY_PAGE) as usize;
        if let Some(remote) = ctx.engine.remote() {
            let room = room.to_owned();
            return self.ask(
                remote,
                Ask::History {
                    room,
                    before,
                    limit,
                },
                out,
            );
        }
        self.history_page(ctx.engine.history(room, before, limit), out);
    }

    /// Finishes a history request with the engine's answer.
    pub(super) fn history_page(
        &self,
        page: Result<(String, Page), Refusal>,
        out: &mut Vec<Effect>,
    ) {
        let (room, page) = match page {
            Ok(answer) => answer,
            Err(refusal) => return refuse(out, refusal),
        };
        out.push(Effect::Reply(Frame::HistoryPage {
            room,
            count: u32::try_from(page.messages.len()).unwrap_or(u32::MAX),
            more: page.more,
        }));
        self.reply_kept(page.messages, out);
    }

    /// Replies with kept room messages: as they are to a binary client, as history
    /// lines (with the time each was said) to a text one.
    fn reply_kept(&self, messages: Vec<Bytes>, out: &mut Vec<Effect>) {
        match self.mode {
            Mode::Binary => out.extend(messages.into_iter().map(Effect::ReplyEncoded)),
            Mode::Text => {
                for bytes in messages {
                    let mut line = BytesMut::new();
                    if let Ok(frame) = Frame::from_encoded(&bytes)
                        && shared::text::render_history_line(&frame, &mut line)
                    {
                        line.truncate(line.len() - 1);
                        out.push(Effect::ReplyText(
                            String::from_utf8_lossy(&line).into_owned(),
                        ));
                    }
                }
            }
        }
    }

    /// A plain text line: to the private-chat partner if there is one, else to the
    /// current room.
    pub(super) fn say_plain(&self, ctx: &Context<'_>, text: String, out: &mut Vec<Effect>) {
        if ctx.engine.chat_partner(self.id).is_some() {
            return self.chat_say(ctx, text, out);
        }
        match self.rooms.last() {
            Some(held) => {
                let room = held.room.name.to_string();
                self.say(ctx, &room, text, out);
            }
            None => refuse(
                out,
                Refusal::new(
                    ErrorCode::NOT_IN_ROOM,
                    "you are in no room; /join one first",
                ),
            ),
        }
    }

    pub(super) fn list_rooms(&self, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        if let Some(remote) = ctx.engine.remote() {
            let limit = MAX_LIST_ITEMS;
            return self.ask(remote, Ask::Rooms { limit }, out);
        }
        rooms_listed(ctx.engine.list_rooms(MAX_LIST_ITEMS), out);
    }

    pub(super) fn who(&self, ctx: &Context<'_>, room: &str, out: &mut Vec<Effect>) {
        if let Some(remote) = ctx.engine.remote() {
            let (room, limit) = (room.to_owned(), MAX_LIST_ITEMS);
            return self.ask(remote, Ask::Who { room, limit }, out);
        }
        members_listed(ctx.engine.who(room, MAX_LIST_ITEMS), out);
    }
}

/// Replies with a room list.
pub(super) fn rooms_listed(listing: Listing<RoomInfo>, out: &mut Vec<Effect>) {
    out.push(Effect::Reply(Frame::RoomList {
        rooms: listing.items,
    }));
    tell_hidden(out, listing.hidden, "rooms");
}

/// Replies with a room's member list.
pub(super) fn members_listed(
    listing: Result<(String, Listing<String>), Refusal>,
    out: &mut Vec<Effect>,
) {
    match listing {
        Ok((room, listing)) => {
            out.push(Effect::Reply(Frame::WhoList {
                room,
                nicks: listing.items,
            }));
            tell_hidden(out, listing.hidden, "members");
        }
        Err(refusal) => refuse(out, refusal),
    }
}
