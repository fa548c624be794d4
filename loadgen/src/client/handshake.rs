//! A client's session start and end: the non-blocking connect, the handshake each
//! protocol and scenario needs (hello, nick, join, a broker's subscribe) and the
//! goodbye at the end of the run.

use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use shared::{Frame, FrameDecoder, LineDecoder, PROTOCOL_VERSION};

use super::broker::BrokerInbox;
use super::conn::{Conn, Inbox};
use super::{Client, Ctx, Rules, Status};
use crate::config::{Protocol, Scenario};
use crate::transport::Transport;

impl Client {
    /// Starts a non-blocking connect.
    pub(crate) fn connect(
        &mut self,
        addr: SocketAddr,
        token: Token,
        deadline_ns: u64,
        cx: &mut Ctx<'_>,
    ) {
        let result = TcpStream::connect(addr)
            .and_then(|stream| Transport::new(stream, cx.rules.tls.as_ref()))
            .and_then(|mut stream| {
                stream.register(cx.registry, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
        match result {
            Ok(stream) => {
                self.conn = Some(Conn {
                    stream,
                    token,
                    writable_interest: true,
                    out: Vec::new(),
                    sent: 0,
                    blocked: false,
                    held_since: None,
                    inbox: Inbox::Frames(FrameDecoder::new(shared::DEFAULT_MAX_FRAME)),
                });
                self.status = Status::Connecting { deadline_ns };
            }
            Err(e) => self.fail(cx, format!("connect to {addr}: {e}")),
        }
    }

    pub(super) fn on_connected(&mut self, deadline_ns: u64, cx: &mut Ctx<'_>) {
        let Some(conn) = &mut self.conn else { return };
        let _ = conn.stream.socket().set_nodelay(true);
        let rules = cx.rules;
        match rules.protocol {
            Protocol::Binary => {
                conn.queue_frame(&Frame::Hello {
                    version: PROTOCOL_VERSION,
                });
                match rules.scenario {
                    Scenario::Echo => {}
                    Scenario::Room => conn.queue_frame(&Frame::Join {
                        room: self.plan.room.clone().unwrap_or_default(),
                        since: self.cursor.resume_point(),
                    }),
                    Scenario::Dm => conn.queue_frame(&Frame::SetNick {
                        nick: self.nick.clone(),
                    }),
                }
            }
            Protocol::Text | Protocol::Line => {
                conn.inbox = Inbox::Lines(LineDecoder::new(shared::DEFAULT_MAX_LINE * 4));
                if rules.protocol == Protocol::Text && rules.scenario != Scenario::Echo {
                    conn.out
                        .extend_from_slice(format!("/nick {}\n", self.nick).as_bytes());
                    if let Some(room) = &self.plan.room {
                        conn.out
                            .extend_from_slice(format!("/join {room}\n").as_bytes());
                    }
                }
            }
            Protocol::Redis | Protocol::Nats => {
                let room = self.plan.room.as_deref().unwrap_or_default();
                conn.inbox = Inbox::Broker(BrokerInbox::start(rules.protocol, room, &mut conn.out));
            }
        }
        // Plain echo needs no handshake in text or line mode: the first /echo (or line)
        // tells a chat server which mode this connection speaks.
        let needs_handshake = match rules.protocol {
            Protocol::Binary | Protocol::Redis | Protocol::Nats => true,
            Protocol::Text => rules.scenario != Scenario::Echo,
            Protocol::Line => false,
        };
        self.status = if needs_handshake {
            Status::Handshake { deadline_ns }
        } else {
            Status::Ready
        };
    }

    pub(super) fn handshaking(&self) -> bool {
        matches!(self.status, Status::Handshake { .. })
    }

    /// Says goodbye at the end of the run (best effort) and closes.
    pub(crate) fn finish(&mut self, registry: &Registry, rules: &Rules) {
        if let Some(conn) = &mut self.conn {
            match rules.protocol {
                Protocol::Binary => {
                    let bye = Frame::Goodbye {
                        reason: "load run finished".into(),
                    };
                    conn.queue_frame(&bye);
                }
                Protocol::Text => conn.out.extend_from_slice(b"/quit\n"),
                Protocol::Line | Protocol::Redis | Protocol::Nats => {}
            }
            let _ = conn.flush(registry);
        }
        self.drop_conn(registry);
        if self.status == Status::Ready {
            self.status = Status::Closed;
        }
    }
}
