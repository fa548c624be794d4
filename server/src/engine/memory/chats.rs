//! Private-chat state of [`MemoryEngine`](super::MemoryEngine): who is in a chat with
//! whom (and its number) and who asked whom, all changed under the engine's `chats`
//! lock, both sides at once.

use std::collections::{HashMap, HashSet};

use shared::ErrorCode;

use crate::engine::{ConnId, Refusal};

/// Every registered connection's chat state.
pub(super) type Chats = HashMap<ConnId, ChatState>;

#[derive(Debug, Default)]
pub(super) struct ChatState {
    /// The partner and the chat's number.
    pub(super) partner: Option<(ConnId, u64)>,
    /// The user this one asked for a chat, awaiting an answer.
    pub(super) asked: Option<ConnId>,
    /// Users who asked this one and await an answer.
    pub(super) askers: HashSet<ConnId>,
}

impl ChatState {
    /// Whether this user is busy for `other`: in a chat, or with a request pending
    /// (made or received) that does not involve `other`.
    pub(super) fn busy_for(&self, other: ConnId) -> bool {
        self.partner.is_some()
            || self.asked.is_some_and(|a| a != other)
            || self.askers.iter().any(|&a| a != other)
    }
}

/// What ending a chat touched, by connection: the partner and the chat's number, the
/// askers declined, the asked withdrawn.
pub(super) type Ended = (Option<(ConnId, u64)>, Vec<ConnId>, Option<ConnId>);

pub(super) fn check_free(chats: &Chats, id: ConnId) -> Result<(), Refusal> {
    match chats.get(&id) {
        Some(me) if me.partner.is_some() => Err(Refusal::new(
            ErrorCode::INVALID_REQUEST,
            "you are already in a private chat; /chat alone ends it",
        )),
        Some(_) => Ok(()),
        None => Err(Refusal::new(ErrorCode::INVALID_REQUEST, "not registered")),
    }
}

/// Starts the chat of `a` and `b`. Their other pending requests end: the ones they
/// made are withdrawn, the ones they received declined. Returns who to tell, with
/// the nick-owner of each ending (`a` or `b`).
pub(super) fn start(
    chats: &mut Chats,
    a: ConnId,
    b: ConnId,
    chat: u64,
) -> (u64, Vec<(ConnId, ConnId, bool)>) {
    let mut ended = Vec::new();
    for (me, other) in [(a, b), (b, a)] {
        let Some(state) = chats.get_mut(&me) else {
            continue;
        };
        state.partner = Some((other, chat));
        let asked = state.asked.take().filter(|&x| x != other);
        let askers: Vec<ConnId> = state.askers.drain().filter(|&x| x != other).collect();
        if let Some(asked) = asked {
            if let Some(s) = chats.get_mut(&asked) {
                s.askers.remove(&me);
            }
            ended.push((asked, me, false));
        }
        for asker in askers {
            if let Some(s) = chats.get_mut(&asker) {
                s.asked = None;
            }
            ended.push((asker, me, true));
        }
    }
    (chat, ended)
}

pub(super) fn end(chats: &mut Chats, id: ConnId) -> Ended {
    let Some(me) = chats.get_mut(&id) else {
        return (None, Vec::new(), None);
    };
    let partner = me.partner.take();
    let withdrawn = me.asked.take();
    let declined: Vec<ConnId> = me.askers.drain().collect();
    if let Some(p) = partner.and_then(|(p, _)| chats.get_mut(&p)) {
        p.partner = None;
    }
    if let Some(w) = withdrawn.and_then(|w| chats.get_mut(&w)) {
        w.askers.remove(&id);
    }
    for asker in &declined {
        if let Some(a) = chats.get_mut(asker) {
            a.asked = None;
        }
    }
    (partner, declined, withdrawn)
}
