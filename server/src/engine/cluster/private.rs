//! Private chats and frames between users of different nodes, on the command thread.
//! The chat state of every user lives in Redis (see `scripts::CHATS`), so a request,
//! an accept and an end each see and change both sides at once, wherever the two
//! users are. Frames for a user of another node go to that node's channel.

use std::sync::Arc;

use shared::names::fold;
use shared::{ErrorCode, Frame};

use super::bridge::Bridge;
use super::keys;
use crate::engine::{Cancelled, ChatEnding, ChatOutcome, ConnId, Partner, Refusal, User};
use crate::session::Scope;

/// What the bury script reports for a user whose chat or requests ended: owner, nick,
/// partner, chat number, withdrawn, declined (owners, `""` for none).
pub(super) type BuriedEnding = (String, String, String, u64, String, Vec<String>);

/// A chat ending as the scripts report it (owners, `""` for none).
#[derive(Debug, Default)]
pub(super) struct Ending {
    pub(super) partner: String,
    pub(super) chat: u64,
    pub(super) withdrawn: String,
    pub(super) declined: Vec<String>,
}

impl Bridge {
    /// The users named by `owners` (`NODE|W.S.G`), as far as they are still there.
    fn users(&mut self, owners: &[&str]) -> Vec<Option<User>> {
        if owners.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = owners.iter().map(|o| self.keys().who(o)).collect();
        let records: Vec<Option<String>> = self
            .with(|conn, _| redis::cmd("MGET").arg(&keys).query(conn))
            .unwrap_or_default();
        let node = self.core.node.clone();
        owners
            .iter()
            .zip(records)
            .map(|(owner, record)| {
                let (user_node, id) = keys::parse_owner(owner)?;
                let record = record?;
                let (mode, nick) = keys::parse_who_record(&record)?;
                Some(User {
                    id,
                    mode,
                    nick: nick.to_owned(),
                    node: (user_node != node).then(|| Arc::from(user_node)),
                })
            })
            .collect()
    }

    fn user(&mut self, owner: &str) -> Option<User> {
        if owner.is_empty() {
            return None;
        }
        self.users(&[owner]).pop().flatten()
    }

    /// Asks `peer` for a private chat (or accepts theirs); with `accept`, only accepts.
    pub(super) fn chat_request(
        &mut self,
        id: ConnId,
        peer: &str,
        accept: bool,
    ) -> Result<ChatOutcome, Refusal> {
        let record_key = self.keys().nick(&fold(peer));
        let record: Option<String> =
            self.with(|conn, _| redis::cmd("GET").arg(&record_key).query(conn))?;
        let Some(owner) = record.as_deref().and_then(keys::parse_nick_record) else {
            return Err(Refusal::no_such_nick(peer));
        };
        let node = self.core.node.clone();
        let me = keys::member(&node, id);
        let them = keys::member(owner.node, owner.id);
        if me == them {
            return Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                "you cannot chat with yourself",
            ));
        }
        let peer_user = User {
            id: owner.id,
            mode: owner.mode,
            nick: owner.nick.to_owned(),
            node: (owner.node != node).then(|| Arc::from(owner.node)),
        };
        let prefix = self.keys().prefix().to_owned();
        let mut rest: Vec<redis::Value> = self.with(|conn, scripts| {
            let script = if accept {
                &scripts.chat_accept
            } else {
                &scripts.chat_request
            };
            let now = shared::time::unix_nanos().to_string();
            script
                .arg(&prefix)
                .arg(&me)
                .arg(&them)
                .arg(now)
                .invoke(conn)
        })?;
        let kind: String = match rest.is_empty() {
            true => String::new(),
            false => redis::from_redis_value(rest.remove(0)).unwrap_or_default(),
        };
        match kind.as_str() {
            "in-chat" => Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                "you are already in a private chat; /chat alone ends it",
            )),
            "not-asked" => Err(Refusal::new(
                ErrorCode::NOT_IN_CHAT,
                format!("{} has not asked you for a private chat", peer_user.nick),
            )),
            "busy" => Ok(ChatOutcome::Busy {
                peer: peer_user.nick,
            }),
            "requested" => {
                let withdrawn: String = rest
                    .first()
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
                    .unwrap_or_default();
                let withdrawn = self.user(&withdrawn);
                Ok(ChatOutcome::Requested {
                    peer: peer_user,
                    withdrawn,
                })
            }
            "started" => {
                let (chat, ended): (u64, Vec<(String, String, String)>) =
                    redis::from_redis_value(redis::Value::Array(rest))
                        .map_err(|e| Refusal::new(ErrorCode::INVALID_REQUEST, e.to_string()))?;
                let mut cancelled = Vec::new();
                for (to, by, declined) in ended {
                    let users = self.users(&[&to, &by]);
                    if let [Some(to), Some(by)] = users.as_slice() {
                        cancelled.push(Cancelled {
                            to: to.clone(),
                            by: by.nick.clone(),
                            declined: declined == "1",
                        });
                    }
                }
                let partner = Partner {
                    user: peer_user.clone(),
                    chat,
                };
                let mut partners = self.core.partners.lock();
                partners.insert(id, partner);
                // A peer on this node hears of the chat from the worker directly, not
                // through this node's delivery, so its partner is noted here too.
                if peer_user.node.is_none()
                    && let Some(me) = self.core.memory.user_of(id)
                {
                    partners.insert(peer_user.id, Partner { user: me, chat });
                }
                drop(partners);
                Ok(ChatOutcome::Started {
                    peer: peer_user,
                    chat,
                    cancelled,
                })
            }
            other => Err(Refusal::new(
                ErrorCode::INVALID_REQUEST,
                format!("unexpected answer from Redis: {other}"),
            )),
        }
    }

    /// Ends `id`'s chat and its pending requests in Redis; `None` if Redis failed.
    fn finish(&mut self, id: ConnId) -> Option<Ending> {
        let me = keys::member(&self.core.node, id);
        let prefix = self.keys().prefix().to_owned();
        self.core.partners.lock().remove(&id);
        let ended: Result<(String, u64, String, Vec<String>), Refusal> =
            self.with(|conn, scripts| scripts.chat_end.arg(&prefix).arg(&me).invoke(conn));
        ended
            .ok()
            .map(|(partner, chat, withdrawn, declined)| Ending {
                partner,
                chat,
                withdrawn,
                declined,
            })
    }

    /// Ends `id`'s chat and requests at its own request.
    pub(super) fn chat_end(&mut self, id: ConnId) -> ChatEnding {
        let ending = self.finish(id).unwrap_or_default();
        let partner = self.user(&ending.partner).map(|user| Partner {
            user,
            chat: ending.chat,
        });
        // A partner on this node is told by the worker directly (see `chat_request`).
        if let Some(partner) = partner.as_ref().filter(|p| p.user.node.is_none()) {
            let mut partners = self.core.partners.lock();
            if partners
                .get(&partner.user.id)
                .is_some_and(|p| p.chat == partner.chat)
            {
                partners.remove(&partner.user.id);
            }
        }
        let declined: Vec<&str> = ending.declined.iter().map(String::as_str).collect();
        let declined = self.users(&declined).into_iter().flatten().collect();
        let withdrawn = self.user(&ending.withdrawn);
        ChatEnding {
            partner,
            declined,
            withdrawn,
        }
    }

    /// Ends the chat and requests of a connection that is gone, telling the others.
    /// False if Redis failed (nothing was ended).
    pub(super) fn end_chat_of(&mut self, id: ConnId, nick: &str) -> bool {
        match self.finish(id) {
            Some(ending) => {
                self.tell_departure(id, nick, ending);
                true
            }
            None => false,
        }
    }

    /// Tells the partner and the askers and asked of a departed user (`id`, `nick`).
    pub(super) fn tell_departure(&mut self, id: ConnId, nick: &str, ending: Ending) {
        let frame = Frame::ChatEnded {
            peer: nick.to_owned(),
            reason: format!("{nick} disconnected"),
        };
        if let Some(partner) = self.user(&ending.partner) {
            let scope = Scope::ChatEnd {
                from: id,
                chat: ending.chat,
            };
            self.tell(&partner, frame.clone(), scope);
        }
        let mut others: Vec<&str> = ending.declined.iter().map(String::as_str).collect();
        others.push(&ending.withdrawn);
        others.retain(|o| !o.is_empty());
        for user in self.users(&others).into_iter().flatten() {
            self.tell(&user, frame.clone(), Scope::Anyone);
        }
    }

    /// Delivers `frame` to `user`: at once on this node, else through its node's
    /// channel. Returns whether some node took it.
    pub(super) fn tell(&mut self, user: &User, frame: Frame, scope: Scope) -> bool {
        match &user.node {
            None => {
                self.core.deliver_frame(user.id, frame, scope, None);
                true
            }
            Some(node) => {
                let node = Arc::clone(node);
                self.send_frame(&node, user.id, &frame, scope)
            }
        }
    }

    /// Publishes `frame` for connection `to` of `node`. Returns whether that node's
    /// channel had a subscriber; a frame that could not be published is counted.
    pub(super) fn send_frame(
        &mut self,
        node: &str,
        to: ConnId,
        frame: &Frame,
        scope: Scope,
    ) -> bool {
        let Ok(binary) = frame.to_bytes() else {
            return false;
        };
        let envelope = keys::frame_envelope(&self.core.node, to, scope, &binary);
        let channel = self.keys().node_channel(node);
        match self.with(|conn, _| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&envelope)
                .query::<i64>(conn)
        }) {
            Ok(receivers) => receivers > 0,
            Err(_) => {
                self.core
                    .counters
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }
}
