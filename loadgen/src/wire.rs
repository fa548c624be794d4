//! The wire form of a load message: one stamp encoded as the run's protocol and
//! scenario ask, by hand, since it runs for every message.
//!
//! The brokers' protocols live beside it: [`redis`] (RESP) and [`nats`], each with the
//! commands a member sends and a decoder of what the broker sends back.

pub(crate) mod nats;
pub(crate) mod redis;

/// Bytes received from a broker and not decoded yet, for its incremental decoder.
#[derive(Debug, Default)]
pub(crate) struct Received {
    buf: Vec<u8>,
    /// `buf[..start]` was decoded already; dropped on the next feed.
    start: usize,
}

impl Received {
    /// Appends bytes read from the socket.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
}

use shared::frame::{LEN_PREFIX, types};

use crate::client::{ClientPlan, Rules};
use crate::config::{Protocol, Scenario};
use crate::stamp::Stamp;

/// Appends one load message carrying `stamp` in the wire form of the run's protocol and
/// scenario. Frames are laid out by hand (no intermediate `Frame`) because this runs for
/// every message; `encodes_like_the_shared_encoder` keeps it equal to `Frame::encode`.
pub(crate) fn encode_message(stamp: &Stamp, rules: &Rules, plan: &ClientPlan, out: &mut Vec<u8>) {
    match rules.protocol {
        Protocol::Binary => {
            let start = out.len();
            out.extend_from_slice(&[0; LEN_PREFIX]);
            match rules.scenario {
                Scenario::Echo => {
                    out.push(types::ECHO);
                    stamp.put_binary(rules.payload, out);
                }
                Scenario::Room => {
                    out.push(types::SAY);
                    put_str8(out, plan.room.as_deref().unwrap_or_default());
                    stamp.put_ascii(rules.payload, out);
                }
                Scenario::Dm => {
                    out.push(types::DIRECT);
                    put_str8(out, plan.partner_nick.as_deref().unwrap_or_default());
                    stamp.put_ascii(rules.payload, out);
                }
            }
            let len = (out.len() - start - LEN_PREFIX) as u32;
            out[start..start + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
        }
        Protocol::Text | Protocol::Line => {
            match (rules.protocol, rules.scenario) {
                (Protocol::Text, Scenario::Echo) => out.extend_from_slice(b"/echo "),
                (Protocol::Text, Scenario::Dm) => {
                    out.extend_from_slice(b"/msg ");
                    out.extend_from_slice(
                        plan.partner_nick.as_deref().unwrap_or_default().as_bytes(),
                    );
                    out.push(b' ');
                }
                // Room text is a plain line (the stamp starts with a letter, not `/`).
                _ => {}
            }
            stamp.put_ascii(rules.payload, out);
            out.push(b'\n');
        }
        // Brokers take any bytes in their length-prefixed payloads: the binary stamp.
        Protocol::Redis => {
            let channel = plan.room.as_deref().unwrap_or_default();
            redis::put_publish(channel, rules.payload, out, |out| {
                stamp.put_binary(rules.payload, out);
            });
        }
        Protocol::Nats => {
            let subject = plan.room.as_deref().unwrap_or_default();
            nats::put_publish(subject, rules.payload, out, |out| {
                stamp.put_binary(rules.payload, out);
            });
        }
    }
}

/// Appends `n` in decimal without allocating (lengths in the brokers' publish commands,
/// written for every message).
pub(crate) fn put_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Names are validated (at most 64 characters of a restricted set) so they fit a `str8`.
fn put_str8(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}
