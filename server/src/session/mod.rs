//! A session: one connection's protocol state and the rules of every request, without
//! sockets. [`Session::apply`] takes a [`Request`], consults and changes the engine,
//! and lists [`Effect`]s (replies, deliveries, closes) that the owning worker carries
//! out. Every rule (nicks, rooms, private chat and BUSY, refusals) is unit-tested here
//! without a socket.
//!
//! Layout: [`request`] (the one request enum, from both framings), [`effects`] (what
//! a request asks the worker to do), `rooms`, `chat` and `login` (the handlers),
//! `tests`.

mod chat;
pub(crate) mod effects;
mod login;
pub(crate) mod request;
mod rooms;

use rooms::{members_listed, rooms_listed};
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use shared::{ErrorCode, Frame, Mode, PROTOCOL_VERSION};

pub(crate) use effects::{Effect, Scope};
pub(crate) use login::Origin;
pub(crate) use request::Request;

use crate::accounts::Logins;
use crate::engine::{Answer, Ask, ConnId, Engine, Outlet, Refusal, Remote, Renamed, RoomRef};
use crate::stats::{CloseReason, Stats};

/// The room text-mode clients are put in when they connect.
pub(crate) const DEFAULT_ROOM: &str = "lobby";

/// Most entries in one room list or member list; the rest are counted in a notice, so
/// an answer stays a few hundred KiB at most whatever the number of rooms or members.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Messages a history page holds when the client names no number.
pub(crate) const DEFAULT_HISTORY_PAGE: u32 = 20;

/// Most messages one history page holds, whatever the client asks.
pub(crate) const MAX_HISTORY_PAGE: u32 = 1000;

/// What a session consults besides itself.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Shared state.
    pub(crate) engine: &'a dyn Engine,
    /// Where room messages go, in each room's order.
    pub(crate) outlet: &'a dyn Outlet,
    /// Server counters, for `/stats`.
    pub(crate) stats: &'a Stats,
    /// The largest frame the server accepts, told in `Welcome`.
    pub(crate) max_frame: usize,
    /// Accounts, failed-login records and the login rules.
    pub(crate) logins: &'a Logins,
    /// The time of this turn, for the login throttle.
    pub(crate) now: Instant,
}

/// Where a session is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Binary framing before a valid `Hello`: nothing else is accepted.
    AwaitingHello,
    /// Registered with the engine under a nick.
    Active,
    /// Unregistered; nothing is served any more.
    Departed,
}

/// A room membership as this session was handed it by the engine. The engine owns who
/// is in which room; the session keeps the receipts of its own memberships, which its
/// worker alone changes, to judge deliveries on arrival and to know the current room.
#[derive(Debug, Clone)]
struct Held {
    room: RoomRef,
    epoch: u64,
}

/// One connection's protocol state.
#[derive(Debug)]
pub(crate) struct Session {
    id: ConnId,
    mode: Mode,
    phase: Phase,
    nick: String,
    /// Where the connection comes from.
    origin: Origin,
    /// The account (case-folded nick) this session logged in to, for its life.
    account: Option<String>,
    /// In join order; the last is the current room.
    rooms: Vec<Held>,
    /// The private chat (partner, number) as far as the frames queued to this
    /// connection go: set with its `ChatStarted`, cleared with its `ChatEnded`. Chat
    /// messages are delivered only while it names their chat.
    chat: Option<(ConnId, u64)>,
    /// The number of the latest chat this connection has seen end: frames of that chat
    /// or an earlier one that arrive later are stale.
    last_ended: u64,
}

impl Session {
    /// A session for a connection whose framing is now known. A binary one awaits its
    /// `Hello`; a text one must be started with [`Session::greet`].
    pub(crate) fn new(id: ConnId, mode: Mode) -> Self {
        Self {
            id,
            mode,
            phase: Phase::AwaitingHello,
            nick: String::new(),
            origin: Origin::LOOPBACK,
            account: None,
            rooms: Vec::new(),
            chat: None,
            last_ended: 0,
        }
    }

    /// The session of a connection from `origin`.
    pub(crate) fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// The account this session is logged in to (case-folded), if any.
    #[cfg(test)]
    pub(crate) fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The nick, once registered.
    #[cfg(test)]
    pub(crate) fn nick(&self) -> Option<&str> {
        (self.phase == Phase::Active).then_some(self.nick.as_str())
    }

    /// Whether the engine knows this connection (so it must be unregistered).
    pub(crate) fn is_registered(&self) -> bool {
        self.phase == Phase::Active
    }

    /// Registers a text-mode client, welcomes it and puts it in [`DEFAULT_ROOM`].
    pub(crate) fn greet(&mut self, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        self.register(ctx, out);
        self.join(ctx, DEFAULT_ROOM, None, out);
    }

    fn register(&mut self, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        self.nick = ctx.engine.register(self.id, self.mode);
        self.phase = Phase::Active;
        out.push(Effect::Reply(Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: u32::try_from(ctx.max_frame).unwrap_or(u32::MAX),
            nick: self.nick.clone(),
        }));
    }

    /// Applies one request, appending what must be done to `out`.
    pub(crate) fn apply(&mut self, request: Request, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        let extra = request.extra_cost();
        if extra > 0 {
            out.push(Effect::Charge(extra));
        }
        match self.phase {
            Phase::AwaitingHello => return self.hello(request, ctx, out),
            Phase::Departed => return,
            Phase::Active => {}
        }
        if self.needs_login(ctx, &request) {
            return refuse(
                out,
                Refusal::new(
                    ErrorCode::LOGIN_REQUIRED,
                    "this server requires a login first: /login NICK PASSWORD",
                ),
            );
        }
        match request {
            Request::Hello { .. } => refuse(
                out,
                Refusal::new(
                    ErrorCode::INVALID_REQUEST,
                    "Hello was already received; send it once, first",
                ),
            ),
            Request::Echo(payload) => out.push(Effect::Reply(echo_reply(payload))),
            Request::Say {
                room: Some(room),
                text,
            } => self.say(ctx, &room, text, out),
            Request::Say { room: None, text } => self.say_plain(ctx, text, out),
            Request::SetNick(nick) => self.set_nick(ctx, &nick, out),
            Request::Login { nick, password } => self.login(ctx, &nick, &password, out),
            Request::Join { room, since } => self.join(ctx, &room, since, out),
            Request::History {
                room,
                before,
                limit,
            } => match room.or_else(|| self.current_room()) {
                Some(room) => self.history(ctx, &room, before, limit, out),
                None => refuse(
                    out,
                    Refusal::new(
                        ErrorCode::NOT_IN_ROOM,
                        "you are in no room; /history ROOM names one",
                    ),
                ),
            },
            Request::Leave(room) => match room.or_else(|| self.current_room()) {
                Some(room) => self.leave(ctx, &room, out),
                None => refuse(
                    out,
                    Refusal::new(ErrorCode::NOT_IN_ROOM, "you are in no room"),
                ),
            },
            Request::Rooms => self.list_rooms(ctx, out),
            Request::Who(room) => match room.or_else(|| self.current_room()) {
                Some(room) => self.who(ctx, &room, out),
                None => refuse(
                    out,
                    Refusal::new(
                        ErrorCode::NOT_IN_ROOM,
                        "you are in no room; /who ROOM names one",
                    ),
                ),
            },
            Request::Direct { to, text } => self.direct(ctx, &to, text, out),
            Request::ChatAsk(peer) => match ctx.engine.remote() {
                Some(remote) => self.ask(remote, Ask::ChatRequest { peer }, out),
                None => {
                    let outcome = ctx.engine.chat_request(self.id, &peer);
                    self.chat_outcome(outcome, out);
                }
            },
            Request::ChatAccept(peer) => match ctx.engine.remote() {
                Some(remote) => self.ask(remote, Ask::ChatAccept { peer }, out),
                None => {
                    let outcome = ctx.engine.chat_accept(self.id, &peer);
                    self.chat_outcome(outcome, out);
                }
            },
            Request::ChatEnd => self.chat_end(ctx, out),
            Request::ChatSay(text) => self.chat_say(ctx, text, out),
            Request::Stats => self.stats(ctx, out),
            Request::Help => {
                for line in shared::text::HELP {
                    let text = (*line).to_owned();
                    out.push(Effect::Reply(Frame::Notice { text }));
                }
            }
            Request::Ping(token) => out.push(Effect::Reply(Frame::Pong { token })),
            Request::Pong => {}
            Request::Goodbye => {
                if self.mode == Mode::Text {
                    let reason = "bye".to_owned();
                    out.push(Effect::Reply(Frame::Goodbye { reason }));
                }
                out.push(Effect::CloseAfterFlush(CloseReason::Goodbye));
            }
            Request::ServerOnly(frame_type) => out.push(Effect::Fail {
                error: Refusal::new(
                    ErrorCode::UNEXPECTED_FRAME,
                    format!("frame type 0x{frame_type:02x} is sent by servers, not clients"),
                ),
                reason: CloseReason::ProtocolError,
            }),
        }
    }

    fn hello(&mut self, request: Request, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        let error = match request {
            Request::Hello { version } if version == PROTOCOL_VERSION => {
                return self.register(ctx, out);
            }
            Request::Hello { version } => Refusal::new(
                ErrorCode::VERSION_MISMATCH,
                format!(
                    "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            ),
            _ => Refusal::new(ErrorCode::HELLO_REQUIRED, "the first frame must be Hello"),
        };
        out.push(Effect::Fail {
            error,
            reason: CloseReason::ProtocolError,
        });
    }

    fn set_nick(&mut self, ctx: &Context<'_>, nick: &str, out: &mut Vec<Effect>) {
        if let Err(refusal) = self.check_registered(ctx, nick) {
            return refuse(out, refusal);
        }
        if let Some(remote) = ctx.engine.remote() {
            let nick = nick.to_owned();
            return self.ask(remote, Ask::SetNick { nick }, out);
        }
        let renamed = ctx.engine.set_nick(self.id, nick);
        self.renamed(ctx, nick, renamed, out);
    }

    /// Finishes a rename with the engine's answer.
    fn renamed(
        &mut self,
        ctx: &Context<'_>,
        nick: &str,
        renamed: Result<Renamed, Refusal>,
        out: &mut Vec<Effect>,
    ) {
        match renamed {
            Ok(renamed) => {
                self.nick = nick.to_owned();
                let frame = Frame::NickChanged {
                    old: renamed.old,
                    new: nick.to_owned(),
                };
                out.push(Effect::Reply(frame.clone()));
                if renamed.changed {
                    let mates = ctx.engine.room_mates(self.id);
                    if !mates.is_empty() {
                        out.push(Effect::Fanout {
                            fanout: Arc::new(mates),
                            frame,
                            scope: Scope::Anyone,
                        });
                    }
                }
            }
            Err(refusal) => refuse(out, refusal),
        }
    }

    /// Hands `ask` to the engine; the connection waits for the answer (see
    /// [`Session::resume`]).
    fn ask(&self, remote: &dyn Remote, ask: Ask, out: &mut Vec<Effect>) {
        match remote.ask(self.id, self.mode, ask) {
            Ok(()) => out.push(Effect::Await),
            Err(refusal) => refuse(out, refusal),
        }
    }

    /// Finishes the request that was handed to the engine, with its answer.
    pub(crate) fn resume(&mut self, answer: Answer, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        if self.phase != Phase::Active {
            return;
        }
        match answer {
            Answer::Nick(nick, renamed) => self.renamed(ctx, &nick, renamed, out),
            Answer::Joined(membership) => self.joined(membership, out),
            Answer::Direct(sent, text) => self.sent_direct(sent, &text, out),
            Answer::Rooms(Ok(listing)) => rooms_listed(listing, out),
            Answer::Rooms(Err(refusal)) => refuse(out, refusal),
            Answer::Who(listing) => members_listed(listing, out),
            Answer::History(page) => self.history_page(page, out),
            Answer::Chat(outcome) => self.chat_outcome(outcome, out),
            Answer::ChatEnded(ending) => self.chat_ended(ending, out),
        }
    }

    fn stats(&self, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        let mut entries = ctx.stats.snapshot();
        let counts = ctx.engine.counts();
        entries.push(("users".to_owned(), counts.users));
        entries.push(("rooms".to_owned(), counts.rooms));
        entries.push(("room_members".to_owned(), counts.members));
        entries.push(("history_bytes".to_owned(), counts.history_bytes));
        let extra = ctx.engine.extra_stats();
        entries.extend(extra.into_iter().map(|s| (s.name.to_owned(), s.value)));
        match self.mode {
            Mode::Binary => out.push(Effect::Reply(Frame::Stats { entries })),
            Mode::Text => {
                out.push(Effect::ReplyText("* stats:".to_owned()));
                for (name, value) in entries {
                    out.push(Effect::ReplyText(format!("*   {name} {value}")));
                }
            }
        }
    }

    /// Unregisters the session and lists what others must be told. With `announce`
    /// false (the server is shutting down and everyone is being told so) nobody is
    /// told anything.
    pub(crate) fn depart(&mut self, ctx: &Context<'_>, announce: bool, out: &mut Vec<Effect>) {
        if self.phase != Phase::Active {
            self.phase = Phase::Departed;
            return;
        }
        self.phase = Phase::Departed;
        let departure = ctx.engine.unregister(self.id);
        self.rooms.clear();
        self.chat = None;
        if !announce {
            return;
        }
        for membership in departure.rooms {
            if membership.notify.is_empty() {
                continue;
            }
            out.push(Effect::Fanout {
                fanout: Arc::new(membership.notify),
                frame: Frame::Left {
                    room: membership.room.name.to_string(),
                    nick: departure.nick.clone(),
                    members: membership.members,
                },
                scope: Scope::Room(membership.room.id),
            });
        }
        let reason = format!("{} disconnected", departure.nick);
        let ending = departure.chat;
        let partner = ending.partner.map(|p| {
            let scope = Scope::ChatEnd {
                from: self.id,
                chat: p.chat,
            };
            (p.user, scope)
        });
        let requests = ending.declined.into_iter().chain(ending.withdrawn);
        let told = requests.map(|user| (user, Scope::Anyone)).chain(partner);
        for (user, scope) in told {
            out.push(Effect::Send {
                to: user.id,
                mode: user.mode,
                frame: Frame::ChatEnded {
                    peer: departure.nick.clone(),
                    reason: reason.clone(),
                },
                scope,
            });
        }
    }

    /// Whether a frame of `scope`, addressed to this session's membership `epoch` (for
    /// room frames), is still wanted on arrival; applies the chat changes it carries.
    pub(crate) fn admit(&mut self, scope: Scope, epoch: u64) -> bool {
        match scope {
            Scope::Anyone => true,
            Scope::Room(room) => self
                .rooms
                .iter()
                .any(|held| held.room.id == room && held.epoch == epoch),
            Scope::Chat { from, chat } => self.chat == Some((from, chat)),
            Scope::ChatStart { from, chat } => {
                if chat <= self.last_ended {
                    return false;
                }
                self.chat = Some((from, chat));
                true
            }
            Scope::ChatEnd { from, chat } => self.see_chat_end(from, chat),
        }
    }

    /// Records that chat `chat` with `from` is over; false if that is no news: it was
    /// seen to end already, or a later chat has started since (which a person's screen
    /// already shows in its place).
    fn see_chat_end(&mut self, from: ConnId, chat: u64) -> bool {
        let superseded = self.chat.is_some_and(|(_, current)| current > chat);
        if chat <= self.last_ended || superseded {
            self.last_ended = self.last_ended.max(chat);
            return false;
        }
        self.last_ended = chat;
        if self.chat == Some((from, chat)) {
            self.chat = None;
        }
        true
    }

    fn current_room(&self) -> Option<String> {
        self.rooms.last().map(|held| held.room.name.to_string())
    }
}

fn refuse(out: &mut Vec<Effect>, refusal: Refusal) {
    out.push(Effect::Reply(Frame::Error {
        code: refusal.code,
        text: refusal.text,
    }));
}

fn echo_reply(payload: Bytes) -> Frame {
    Frame::EchoReply {
        server_time_ns: shared::time::unix_nanos(),
        payload,
    }
}

/// Cuts `hidden` entries short with a notice saying how many.
fn tell_hidden(out: &mut Vec<Effect>, hidden: usize, what: &str) {
    if hidden > 0 {
        let text = format!("{hidden} more {what} not listed");
        out.push(Effect::Reply(Frame::Notice { text }));
    }
}
