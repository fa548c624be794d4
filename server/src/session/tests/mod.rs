//! Session rules, without sockets: every request, refusal and private-chat transition
//! applied to a real [`MemoryEngine`], checked by the effects it lists.
//!
//! Layout: the helpers here; `requests` (handshake, echo, nicks, stats, goodbye, both
//! framings), `rooms`, `chat` (direct messages, private chats, departures).

mod chat;
mod history;
mod login;
mod requests;
mod rooms;

use std::cell::RefCell;

use bytes::Bytes;
use shared::{ErrorCode, Frame, Mode, PROTOCOL_VERSION};

use super::*;
use crate::engine::{ConnId, Fanout, HistoryLimits, MemoryEngine, RoomId};

/// One room message as the engine handed it to the outlet.
type Posted = (RoomId, Frame, Bytes, Arc<Fanout>);

/// An outlet that records what the engine hands it.
#[derive(Default)]
struct Recorder {
    posted: RefCell<Vec<Posted>>,
}

impl Outlet for Recorder {
    fn deliver(&self, room: RoomId, message: &Frame, binary: &Bytes, fanout: &Arc<Fanout>) {
        self.posted
            .borrow_mut()
            .push((room, message.clone(), binary.clone(), Arc::clone(fanout)));
    }
}

struct World {
    engine: MemoryEngine,
    stats: Stats,
    outlet: Recorder,
    logins: Logins,
    /// The time requests are applied at (the login throttle's clock).
    now: std::cell::Cell<Instant>,
}

/// History limits for tests: small enough to reach.
const LIMITS: HistoryLimits = HistoryLimits {
    messages: 5,
    room_bytes: 64 << 10,
    budget: 1 << 20,
};

impl World {
    fn new() -> Self {
        Self::with_limits(LIMITS)
    }

    fn with_limits(limits: HistoryLimits) -> Self {
        Self {
            engine: MemoryEngine::new(2, limits),
            stats: Stats::new(2),
            outlet: Recorder::default(),
            logins: Logins::default(),
            now: std::cell::Cell::new(Instant::now()),
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            engine: &self.engine,
            outlet: &self.outlet,
            stats: &self.stats,
            max_frame: 1 << 20,
            logins: &self.logins,
            now: self.now.get(),
        }
    }

    /// A binary session past its Hello, named `nick`.
    fn binary(&self, slot: u32, nick: &str) -> Session {
        let mut s = Session::new(id(slot), Mode::Binary);
        self.apply(
            &mut s,
            Request::Hello {
                version: PROTOCOL_VERSION,
            },
        );
        self.apply(&mut s, Request::SetNick(nick.to_owned()));
        s
    }

    /// A greeted text session (in the lobby), named `nick`.
    fn text(&self, slot: u32, nick: &str) -> Session {
        let mut s = Session::new(id(slot), Mode::Text);
        s.greet(&self.ctx(), &mut Vec::new());
        self.apply(&mut s, Request::SetNick(nick.to_owned()));
        s
    }

    /// The effects of `request`, followed by what the outlet was handed for it (as
    /// fan-outs scoped to their room), so tests see room messages like other frames.
    fn apply(&self, session: &mut Session, request: Request) -> Vec<Effect> {
        let mut out = Vec::new();
        session.apply(request, &self.ctx(), &mut out);
        for (room, frame, binary, fanout) in self.outlet.posted.borrow_mut().drain(..) {
            assert_eq!(Frame::from_encoded(&binary).as_ref(), Ok(&frame));
            out.push(Effect::Fanout {
                fanout,
                frame,
                scope: Scope::Room(room),
            });
        }
        out
    }
}

/// A plain join of `room`.
fn join(room: String) -> Request {
    Request::Join { room, since: None }
}

/// A join of `room` resuming after message `since`.
fn resume(room: &str, since: u64) -> Request {
    Request::Join {
        room: room.to_owned(),
        since: Some(since),
    }
}

fn id(slot: u32) -> ConnId {
    ConnId {
        worker: slot % 2,
        slot,
        generation: 0,
    }
}

/// The frames replied to the requester.
fn replies(effects: &[Effect]) -> Vec<&Frame> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// The one reply (besides a charge), which must be an error with `code`.
fn assert_refused(effects: &[Effect], code: ErrorCode) -> String {
    let effects: Vec<&Effect> = effects
        .iter()
        .filter(|e| !matches!(e, Effect::Charge(_)))
        .collect();
    match effects.as_slice() {
        [Effect::Reply(Frame::Error { code: c, text })] if *c == code => text.clone(),
        other => panic!("expected a refusal with {code:?}, got {other:?}"),
    }
}

/// The frames sent to `to`, with their scope.
fn sent_to(effects: &[Effect], to: ConnId) -> Vec<(&Frame, Scope)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to: t,
                frame,
                scope,
                ..
            } if *t == to => Some((frame, *scope)),
            Effect::Fanout {
                fanout,
                frame,
                scope,
            } if fanout.contains(to) => Some((frame, *scope)),
            _ => None,
        })
        .collect()
}

fn fanouts(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Fanout { .. }))
        .count()
}

/// The scope of the one frame `effects` send to `to`.
fn scope_to(effects: &[Effect], to: ConnId) -> Scope {
    match sent_to(effects, to)[..] {
        [(_, scope)] => scope,
        ref other => panic!("{other:?}"),
    }
}
