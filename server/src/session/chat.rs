//! Direct messages and private chats: request, accept, BUSY, lines, end.

use std::sync::Arc;

use shared::text::escape;
use shared::{ErrorCode, Frame, Mode};

use super::{Context, Effect, Scope, Session, refuse};
use crate::engine::{Ask, ChatEnding, ChatOutcome, Refusal};

impl Session {
    pub(super) fn direct(&self, ctx: &Context<'_>, to: &str, text: String, out: &mut Vec<Effect>) {
        let Some(target) = ctx.engine.lookup(to) else {
            // Not on this node: a shared engine looks further.
            if let Some(remote) = ctx.engine.remote() {
                let (to, from) = (to.to_owned(), self.nick.clone());
                return self.ask(remote, Ask::Direct { to, from, text }, out);
            }
            return refuse(out, Refusal::no_such_nick(to));
        };
        if self.mode == Mode::Text {
            // Show a person what it sent, as the terminal client does.
            let line = format!("[dm] -> {}: {}", escape(&target.nick), escape(&text));
            out.push(Effect::ReplyText(line));
        }
        let frame = Frame::DirectMsg {
            from: self.nick.clone(),
            text,
        };
        out.push(send(&target, frame, Scope::Anyone));
    }

    /// Finishes a direct message that went to another node, with the engine's answer
    /// (the recipient's nick as it writes it).
    pub(super) fn sent_direct(
        &self,
        sent: Result<String, Refusal>,
        text: &str,
        out: &mut Vec<Effect>,
    ) {
        match sent {
            Ok(nick) if self.mode == Mode::Text => {
                let line = format!("[dm] -> {}: {}", escape(&nick), escape(text));
                out.push(Effect::ReplyText(line));
            }
            Ok(_) => {}
            Err(refusal) => refuse(out, refusal),
        }
    }

    pub(super) fn chat_outcome(
        &mut self,
        outcome: Result<ChatOutcome, Refusal>,
        out: &mut Vec<Effect>,
    ) {
        let me = self.nick.clone();
        match outcome {
            Ok(ChatOutcome::Busy { peer }) => out.push(Effect::Reply(Frame::Busy { peer })),
            Ok(ChatOutcome::Requested { peer, withdrawn }) => {
                if let Some(old) = withdrawn {
                    let frame = Frame::ChatEnded {
                        peer: me.clone(),
                        reason: "request withdrawn".to_owned(),
                    };
                    out.push(send(&old, frame, Scope::Anyone));
                }
                let text = format!("asked {} for a private chat", peer.nick);
                out.push(send(
                    &peer,
                    Frame::ChatRequested { from: me },
                    Scope::Anyone,
                ));
                out.push(Effect::Reply(Frame::Notice { text }));
            }
            Ok(ChatOutcome::Started {
                peer,
                chat,
                cancelled,
            }) => {
                self.chat = Some((peer.id, chat));
                out.push(Effect::Reply(Frame::ChatStarted {
                    peer: peer.nick.clone(),
                }));
                let started = Frame::ChatStarted { peer: me };
                let scope = Scope::ChatStart {
                    from: self.id,
                    chat,
                };
                out.push(send(&peer, started, scope));
                for c in cancelled {
                    let reason = if c.declined {
                        "request declined"
                    } else {
                        "request withdrawn"
                    };
                    let frame = Frame::ChatEnded {
                        peer: c.by,
                        reason: reason.to_owned(),
                    };
                    out.push(send(&c.to, frame, Scope::Anyone));
                }
            }
            Err(refusal) => refuse(out, refusal),
        }
    }

    pub(super) fn chat_end(&mut self, ctx: &Context<'_>, out: &mut Vec<Effect>) {
        if let Some(remote) = ctx.engine.remote() {
            return self.ask(remote, Ask::ChatEnd, out);
        }
        self.chat_ended(ctx.engine.chat_end(self.id), out);
    }

    /// Finishes ending a chat with the engine's answer.
    pub(super) fn chat_ended(&mut self, ending: ChatEnding, out: &mut Vec<Effect>) {
        if ending.is_empty() {
            return refuse(
                out,
                Refusal::new(ErrorCode::NOT_IN_CHAT, "you are not in a private chat"),
            );
        }
        let me = self.nick.clone();
        if let Some(partner) = ending.partner {
            let frame = Frame::ChatEnded {
                peer: me.clone(),
                reason: format!("ended by {me}"),
            };
            let scope = Scope::ChatEnd {
                from: self.id,
                chat: partner.chat,
            };
            out.push(send(&partner.user, frame, scope));
            self.see_chat_end(partner.user.id, partner.chat);
            out.push(Effect::Reply(Frame::ChatEnded {
                peer: partner.user.nick,
                reason: "ended by you".to_owned(),
            }));
        }
        for asker in ending.declined {
            let text = format!("declined {}'s request", asker.nick);
            let frame = Frame::ChatEnded {
                peer: me.clone(),
                reason: "request declined".to_owned(),
            };
            out.push(send(&asker, frame, Scope::Anyone));
            out.push(Effect::Reply(Frame::Notice { text }));
        }
        if let Some(withdrawn) = ending.withdrawn {
            let text = format!("withdrew your request to {}", withdrawn.nick);
            let frame = Frame::ChatEnded {
                peer: me,
                reason: "request withdrawn".to_owned(),
            };
            out.push(send(&withdrawn, frame, Scope::Anyone));
            out.push(Effect::Reply(Frame::Notice { text }));
        }
    }

    pub(super) fn chat_say(&self, ctx: &Context<'_>, text: String, out: &mut Vec<Effect>) {
        let Some(partner) = ctx.engine.chat_partner(self.id) else {
            return refuse(
                out,
                Refusal::new(ErrorCode::NOT_IN_CHAT, "you are not in a private chat"),
            );
        };
        if self.mode == Mode::Text {
            // The partner's lines arrive as `[chat] <them> ...`; show ours the same way.
            let line = format!("[chat] <{}> {}", escape(&self.nick), escape(&text));
            out.push(Effect::ReplyText(line));
        }
        let frame = Frame::ChatMsg {
            from: self.nick.clone(),
            text,
        };
        let scope = Scope::Chat {
            from: self.id,
            chat: partner.chat,
        };
        out.push(send(&partner.user, frame, scope));
    }
}

fn send(to: &crate::engine::User, frame: Frame, scope: Scope) -> Effect {
    match &to.node {
        None => Effect::Send {
            to: to.id,
            mode: to.mode,
            frame,
            scope,
        },
        Some(node) => Effect::SendRemote {
            node: Arc::clone(node),
            to: to.id,
            frame,
            scope,
        },
    }
}
