//! Room requests: join, leave, say, and the room and member lists.

use std::sync::Arc;

use shared::{ErrorCode, Frame};

use super::{Context, Effect, Held, MAX_LIST_ITEMS, Scope, Session, refuse, tell_hidden};
use crate::engine::Refusal;

impl Session {
    pub(super) fn join(&mut self, ctx: &Context<'_>, room: &str, out: &mut Vec<Effect>) {
        let membership = match ctx.engine.join(self.id, room) {
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
        };
        out.push(Effect::Reply(frame.clone()));
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
        match ctx.engine.cast(self.id, room) {
            Ok(cast) => out.push(Effect::Fanout {
                fanout: cast.fanout,
                frame: Frame::RoomMsg {
                    room: cast.room.name.to_string(),
                    from: self.nick.clone(),
                    text,
                },
                scope: Scope::Room(cast.room.id),
            }),
            Err(refusal) => refuse(out, refusal),
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
        let listing = ctx.engine.list_rooms(MAX_LIST_ITEMS);
        out.push(Effect::Reply(Frame::RoomList {
            rooms: listing.items,
        }));
        tell_hidden(out, listing.hidden, "rooms");
    }

    pub(super) fn who(&self, ctx: &Context<'_>, room: &str, out: &mut Vec<Effect>) {
        match ctx.engine.who(room, MAX_LIST_ITEMS) {
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
}
