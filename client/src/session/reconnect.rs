//! The session across connections: what a lost connection forgets, and how the next
//! one takes the nick back and re-joins the rooms, resuming each from the last message
//! id seen in it.
//!
//! Rooms are re-joined one at a time, oldest first (so the current room is joined last
//! and stays current): the next `Join` is sent only once the previous room's `Joined`,
//! `Resumed` and every replayed message are in, so replays never pile up in the
//! server's queue for this connection. A resume the server refuses with
//! `UNKNOWN_MESSAGE_ID` (it restarted, or no longer knows the id) is retried without
//! `since`, and the user is told that room's history was not available.
//!
//! The nick is claimed again with `SetNick` right after `Welcome`. If the server still
//! gives it to our old connection (it has not noticed that one is gone), we stay a
//! guest and try again every [`NICK_RETRY_EVERY`] for up to [`NICK_RETRY_FOR`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shared::names::fold;
use shared::text::escape;
use shared::{ErrorCode, Frame};

use super::{Reaction, Session};
use crate::render;

/// How often a nick still held by our old connection is asked for again.
pub(crate) const NICK_RETRY_EVERY: Duration = Duration::from_secs(2);
/// How long after reconnecting the nick is asked for again before giving up.
pub(crate) const NICK_RETRY_FOR: Duration = Duration::from_secs(60);
/// How long a re-join may wait for the server's answers before the session goes on
/// without them (typed lines are refused until it is done).
pub(crate) const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether requests can go to the server.
#[derive(Debug)]
pub(super) enum Link {
    /// Connected; typed requests are sent.
    Online,
    /// The connection is lost; typed requests are refused until a reconnect.
    Offline,
    /// Connected again and re-joining the rooms; typed requests are refused until done.
    Rejoining(Rejoin),
}

/// A re-join in progress.
#[derive(Debug)]
pub(super) struct Rejoin {
    /// Rooms still to join, oldest first; each resumes from the last id seen in it
    /// when its turn comes.
    todo: VecDeque<String>,
    /// The room being joined now.
    step: Step,
    /// Messages replayed so far, all rooms together.
    replayed: u64,
    /// Messages the server no longer held, all rooms together.
    missed: u64,
    /// Rooms whose resume the server refused: joined without history.
    unavailable: Vec<String>,
    /// Past this, the session stops waiting for the re-join to finish.
    deadline: Instant,
}

/// Where the room being re-joined stands.
#[derive(Debug)]
enum Step {
    /// `Join` sent (with `since` to resume); waiting for our `Joined`.
    Joining { room: String, since: Option<u64> },
    /// Joined with `since`; waiting for `Resumed`. `last` is `Joined.last`.
    AwaitingResume { room: String, last: u64 },
    /// `left` replayed messages still to come.
    Replaying { room: String, left: u32, last: u64 },
}

/// Taking our nick back after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NickClaim {
    /// Nothing to take back, or done.
    None,
    /// `SetNick` sent; its answer is the next `NickChanged` of ours or nick error.
    Sent { nick: String, since: Instant },
    /// Refused as taken; the next [`Session::tick`] schedules another try.
    Refused { nick: String, since: Instant },
    /// Another try at `at`.
    Waiting {
        nick: String,
        since: Instant,
        at: Instant,
    },
}

impl Session {
    /// Whether typed requests are sent (connected, and no re-join in progress).
    pub fn is_online(&self) -> bool {
        matches!(self.link, Link::Online)
    }

    /// Whether a reconnect is re-joining rooms.
    pub fn is_rejoining(&self) -> bool {
        matches!(self.link, Link::Rejoining(_))
    }

    /// The connection is gone: forget what was waiting for an answer on it, keep the
    /// rooms (with the last id seen in each) and the nick to ask for next time.
    pub fn connection_lost(&mut self) -> Reaction {
        self.link = Link::Offline;
        self.claim = NickClaim::None;
        self.history = None;
        self.echoes.clear();
        self.awaiting = 0;
        self.asked_by.clear();
        // The server ends a private chat when either side goes.
        match self.partner.take() {
            Some(peer) => Reaction::line(format!(
                "* private chat with {} ended: connection lost",
                escape(&peer)
            )),
            None => Reaction::default(),
        }
    }

    /// Welcomed again under `nick` (a guest name): claim our nick back and start
    /// re-joining the rooms, resuming each.
    pub fn reconnected(&mut self, nick: String, now: Instant) -> Reaction {
        self.me = nick;
        let mut reaction = Reaction::default();
        let mut line = format!("* connected again as {}", escape(&self.me));
        if let Some(chosen) = self.chosen.clone()
            && !self.is_me(&chosen)
        {
            line.push_str(&format!("; taking back nick {}", escape(&chosen)));
            reaction.frames.push(Frame::SetNick {
                nick: chosen.clone(),
            });
            self.claim = NickClaim::Sent {
                nick: chosen,
                since: now,
            };
        }
        if !self.rooms.is_empty() {
            let names: Vec<String> = self.rooms.iter().map(|r| escape(&r.name).into()).collect();
            line.push_str(&format!("; re-joining {}", names.join(", ")));
        }
        reaction.lines.push(line);
        let mut todo: VecDeque<String> = self.rooms.iter().map(|r| r.name.clone()).collect();
        match todo.pop_front() {
            Some(first) => {
                let since = self.last_seen(&first);
                reaction.frames.push(join_frame(&first, since));
                self.link = Link::Rejoining(Rejoin {
                    todo,
                    step: Step::Joining { room: first, since },
                    replayed: 0,
                    missed: 0,
                    unavailable: Vec::new(),
                    deadline: now + REJOIN_TIMEOUT,
                });
            }
            None => self.finish(0, 0, &[], &mut reaction),
        }
        reaction
    }

    /// When [`tick`](Session::tick) has something to do next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let claim = match &self.claim {
            NickClaim::Waiting { at, .. } => Some(*at),
            _ => None,
        };
        let rejoin = match &self.link {
            Link::Rejoining(rejoin) => Some(rejoin.deadline),
            _ => None,
        };
        claim.into_iter().chain(rejoin).min()
    }

    /// Moves timed work along: schedules and sends another claim of a nick that was
    /// still held, and stops waiting for a re-join the server does not finish. Call it
    /// after every event and at [`deadline`](Session::deadline).
    pub fn tick(&mut self, now: Instant) -> Reaction {
        let mut reaction = self.tick_claim(now);
        let due = matches!(&self.link, Link::Rejoining(rejoin) if now >= rejoin.deadline);
        if due && let Link::Rejoining(rejoin) = std::mem::replace(&mut self.link, Link::Online) {
            let room = match rejoin.step {
                Step::Joining { room, .. }
                | Step::AwaitingResume { room, .. }
                | Step::Replaying { room, .. } => room,
            };
            reaction.lines.push(format!(
                "! re-joining {} got no complete answer within {} s; going on \
                 without it (/join ROOM to try again)",
                escape(&room),
                REJOIN_TIMEOUT.as_secs()
            ));
            // What was not re-joined is not ours any more.
            self.forget_room(&room);
            for room in rejoin.todo {
                self.forget_room(&room);
            }
            reaction.reconnected = true;
        }
        reaction
    }

    fn tick_claim(&mut self, now: Instant) -> Reaction {
        match std::mem::replace(&mut self.claim, NickClaim::None) {
            NickClaim::Refused { nick, since } => {
                if now.saturating_duration_since(since) >= NICK_RETRY_FOR {
                    return Reaction::line(format!(
                        "* gave up taking back nick {}; still {} (/nick NAME to try again)",
                        escape(&nick),
                        escape(&self.me)
                    ));
                }
                self.claim = NickClaim::Waiting {
                    nick,
                    since,
                    at: now + NICK_RETRY_EVERY,
                };
                Reaction::default()
            }
            NickClaim::Waiting { nick, since, at }
                if now >= at && !matches!(self.link, Link::Offline) =>
            {
                self.claim = NickClaim::Sent {
                    nick: nick.clone(),
                    since,
                };
                Reaction::send(Frame::SetNick { nick })
            }
            other => {
                self.claim = other;
                Reaction::default()
            }
        }
    }

    /// Our nick changed to `new`: if that answers a claim, says so and returns `true`
    /// (the claim was not counted as an awaited request).
    pub(super) fn nick_taken_back(&mut self, new: &str, reaction: &mut Reaction) -> bool {
        let NickClaim::Sent { nick, .. } = &self.claim else {
            return false;
        };
        if fold(nick) == fold(new) {
            reaction
                .lines
                .push(format!("* took back nick {}", escape(new)));
        }
        self.claim = NickClaim::None;
        true
    }

    /// An error that answers a claim or a re-join, handled here; `None` otherwise.
    pub(super) fn reconnect_error(&mut self, code: ErrorCode, text: &str) -> Option<Reaction> {
        if let NickClaim::Sent { nick, since } = &self.claim
            && (code == ErrorCode::NICK_TAKEN || code == ErrorCode::INVALID_NAME)
        {
            let (nick, since) = (nick.clone(), *since);
            if code == ErrorCode::NICK_TAKEN {
                let line = format!(
                    "* nick {} is still held, probably by our old connection that the \
                     server has not closed yet; staying {} and trying again every {} s \
                     for up to {} s",
                    escape(&nick),
                    escape(&self.me),
                    NICK_RETRY_EVERY.as_secs(),
                    NICK_RETRY_FOR.as_secs()
                );
                self.claim = NickClaim::Refused { nick, since };
                return Some(Reaction::line(line));
            }
            self.claim = NickClaim::None;
            return Some(Reaction::line(format!(
                "! cannot take back nick {}: error {code}: {}",
                escape(&nick),
                escape(text)
            )));
        }
        let Link::Rejoining(rejoin) = &mut self.link else {
            return None;
        };
        let Step::Joining { room, since } = &rejoin.step else {
            return None;
        };
        if code.closes_connection() {
            return None;
        }
        let room = room.clone();
        let mut reaction = Reaction::default();
        if code == ErrorCode::UNKNOWN_MESSAGE_ID
            && let Some(since) = *since
        {
            reaction.lines.push(format!(
                "* {}: history not available (the server does not know our last message, \
                 {since}: restarted?); joining without it",
                escape(&room)
            ));
            reaction.frames.push(join_frame(&room, None));
            rejoin.unavailable.push(room.clone());
            rejoin.step = Step::Joining { room, since: None };
            return Some(reaction);
        }
        reaction.lines.push(format!(
            "! cannot re-join {}: error {code}: {}",
            escape(&room),
            escape(text)
        ));
        self.forget_room(&room);
        self.next_room(&mut reaction);
        Some(reaction)
    }

    /// Our `Joined` for `room`: if it answers the re-join, moves it along and returns
    /// the reaction (showing `line`); `None` if it is not part of a re-join.
    pub(super) fn rejoin_joined(&mut self, room: &str, last: u64, line: &str) -> Option<Reaction> {
        let Link::Rejoining(rejoin) = &mut self.link else {
            return None;
        };
        let Step::Joining { room: asked, since } = &rejoin.step else {
            return None;
        };
        if fold(asked) != fold(room) {
            return None;
        }
        let mut reaction = Reaction::line(line);
        let resuming = since.is_some();
        if resuming {
            rejoin.step = Step::AwaitingResume {
                room: room.to_owned(),
                last,
            };
        }
        if let Some(r) = self.room_mut(room) {
            r.name = room.to_owned();
            if !resuming {
                // A fresh join (perhaps on a restarted server, whose ids start over):
                // its position replaces ours.
                r.last = Some(last);
            }
        }
        if !resuming {
            self.next_room(&mut reaction);
        }
        Some(reaction)
    }

    /// `Resumed` for `room`: shows it; the next `replayed` messages of the room are the
    /// replay.
    pub(super) fn rejoin_resumed(&mut self, room: String, replayed: u32, missed: u64) -> Reaction {
        let mut reaction = Reaction::line(render::frame_line(&Frame::Resumed {
            room: room.clone(),
            replayed,
            missed,
        }));
        if let Link::Rejoining(rejoin) = &mut self.link
            && let Step::AwaitingResume { room: asked, last } = &rejoin.step
            && fold(asked) == fold(&room)
        {
            let last = *last;
            rejoin.replayed += u64::from(replayed);
            rejoin.missed += missed;
            if replayed == 0 {
                self.room_done(&room, last, &mut reaction);
            } else {
                rejoin.step = Step::Replaying {
                    room,
                    left: replayed,
                    last,
                };
            }
        }
        reaction
    }

    /// A message of `room` was shown: if it was the last of the room's replay, the
    /// room is done.
    pub(super) fn rejoin_replayed(&mut self, room: &str, reaction: &mut Reaction) {
        if let Link::Rejoining(rejoin) = &mut self.link
            && let Step::Replaying {
                room: asked,
                left,
                last,
            } = &mut rejoin.step
            && fold(asked) == fold(room)
        {
            *left -= 1;
            if *left == 0 {
                let last = *last;
                self.room_done(room, last, reaction);
            }
        }
    }

    /// `room` is resumed and its replay shown: its position is `last` (the room's
    /// latest id at the join) or the last replayed id, whichever is later; then the
    /// next room.
    fn room_done(&mut self, room: &str, last: u64, reaction: &mut Reaction) {
        if let Some(r) = self.room_mut(room) {
            r.last = Some(r.last.map_or(last, |seen| seen.max(last)));
        }
        self.next_room(reaction);
    }

    fn next_room(&mut self, reaction: &mut Reaction) {
        let Link::Rejoining(rejoin) = &mut self.link else {
            return;
        };
        match rejoin.todo.pop_front() {
            Some(next) => {
                let since = self
                    .rooms
                    .iter()
                    .find(|r| fold(&r.name) == fold(&next))
                    .and_then(|r| r.last);
                reaction.frames.push(join_frame(&next, since));
                rejoin.step = Step::Joining { room: next, since };
            }
            None => {
                let (replayed, missed) = (rejoin.replayed, rejoin.missed);
                let unavailable = std::mem::take(&mut rejoin.unavailable);
                self.finish(replayed, missed, &unavailable, reaction);
            }
        }
    }

    /// Every room is re-joined: say so, with the counts.
    fn finish(
        &mut self,
        replayed: u64,
        missed: u64,
        unavailable: &[String],
        reaction: &mut Reaction,
    ) {
        self.link = Link::Online;
        let mut line = format!(
            "* reconnected, {replayed} {} replayed",
            if replayed == 1 { "message" } else { "messages" }
        );
        if missed > 0 {
            line.push_str(&format!("; {missed} missed (no longer kept by the server)"));
        }
        if !unavailable.is_empty() {
            let rooms: Vec<String> = unavailable.iter().map(|r| escape(r).into_owned()).collect();
            line.push_str(&format!("; history not available for {}", rooms.join(", ")));
        }
        if let NickClaim::Refused { nick, .. } | NickClaim::Waiting { nick, .. } = &self.claim {
            line.push_str(&format!("; nick {} still held, trying again", escape(nick)));
        }
        reaction.lines.push(line);
        reaction.reconnected = true;
    }
}

fn join_frame(room: &str, since: Option<u64>) -> Frame {
    Frame::Join {
        room: room.to_owned(),
        since,
    }
}
