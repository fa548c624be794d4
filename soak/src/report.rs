//! What the hostile clients did and what the server answered, per kind, and whether that
//! is what the server should have answered.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::kind::Kind;

/// Tallies of one kind over every connection it opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindReport {
    /// Connections attempted.
    pub connections: u64,
    /// Attempts that never got connected.
    pub connect_failures: u64,
    /// Connections greeted by the server (`Welcome` frame or welcome line).
    pub welcomed: u64,
    /// Bytes written to the server.
    pub bytes_sent: u64,
    /// Requests that expect an answer (echoes, room messages) written or queued.
    pub requests: u64,
    /// Answers to them received (`EchoReply`, `RoomMsg`).
    pub replies: u64,
    /// Error codes received, with how often.
    pub codes: BTreeMap<u16, u64>,
    /// Connections the server closed (EOF or reset seen before we closed).
    pub server_closed: u64,
    /// Of those, closes seen as a reset.
    pub resets: u64,
    /// Connections we closed as part of the misbehaviour (or after the final answer).
    pub we_closed: u64,
    /// Connections where the server stayed silent past the answer timeout.
    pub unanswered: u64,
    /// Connections still open (or waiting) when the duration ran out.
    pub at_deadline: u64,
    /// `Shutdown` notices received.
    pub shutdowns: u64,
    /// Connections whose behaviour matched the expectation of their kind.
    pub hits: u64,
    /// Connections whose behaviour did not.
    pub misses: u64,
    /// Sum of connection lifetimes, for rates.
    pub lifetime: Duration,
    /// Largest reply count of one connection (flooders: the fastest one).
    pub max_replies_one: u64,
    /// Lifetime of the connection with `max_replies_one`.
    pub max_replies_lifetime: Duration,
}

impl KindReport {
    /// Error codes as `101x3 103x1`, or `-`.
    pub fn codes_text(&self) -> String {
        if self.codes.is_empty() {
            return "-".to_owned();
        }
        self.codes
            .iter()
            .map(|(code, n)| format!("{code}x{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Replies per second of one connection, averaged over connections.
    pub fn replies_per_conn_per_s(&self) -> f64 {
        let life = self.lifetime.as_secs_f64();
        if life <= 0.0 {
            return 0.0;
        }
        self.replies as f64 / life
    }
}

/// Everything one hostile run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per kind, in [`Kind::ALL`] order.
    pub kinds: BTreeMap<Kind, KindReport>,
    /// How long the run took, grace included.
    pub elapsed: Duration,
    /// Most connections open at the same moment.
    pub peak_open: usize,
    /// The server's rate limit the flooder verdict is judged against.
    pub rate_limit: u32,
    /// The server's burst allowance.
    pub rate_burst: u32,
}

/// Whether a kind behaved as expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True when nothing unexpected happened.
    pub ok: bool,
    /// Why not, or a short summary.
    pub note: String,
}

impl Report {
    /// Judges one kind.
    pub fn verdict(&self, kind: Kind) -> Verdict {
        let Some(r) = self.kinds.get(&kind) else {
            return Verdict {
                ok: true,
                note: "not run".to_owned(),
            };
        };
        if r.misses > 0 {
            return Verdict {
                ok: false,
                note: format!("{} of {} connections misbehaved", r.misses, r.connections),
            };
        }
        if kind == Kind::Flooder {
            // Upper bound: the burst, then the refill rate, with 15% slack for timing.
            let life = r.max_replies_lifetime.as_secs_f64();
            let bound = u64::from(self.rate_burst)
                + (f64::from(self.rate_limit) * life * 1.15) as u64
                + 100;
            if self.rate_limit > 0 && r.max_replies_one > bound {
                return Verdict {
                    ok: false,
                    note: format!(
                        "a flooder got {} replies in {:.1}s, more than burst {} + {}/s allows",
                        r.max_replies_one, life, self.rate_burst, self.rate_limit
                    ),
                };
            }
        }
        if r.hits == 0 && r.connections > r.connect_failures {
            return Verdict {
                ok: false,
                note: "no connection completed its misbehaviour".to_owned(),
            };
        }
        Verdict {
            ok: true,
            note: "ok".to_owned(),
        }
    }

    /// Whether every kind that ran behaved as expected.
    pub fn all_ok(&self) -> bool {
        self.kinds.keys().all(|&k| self.verdict(k).ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hostile: {:.1}s, peak {} connections open at once",
            self.elapsed.as_secs_f64(),
            self.peak_open
        )?;
        for (kind, r) in &self.kinds {
            let verdict = self.verdict(*kind);
            write!(
                f,
                "hostile kind={kind} conns={} connect_failures={} welcomed={} bytes_sent={} \
                 requests={} replies={} codes={} server_closed={} resets={} we_closed={} \
                 unanswered={} at_deadline={} shutdowns={} hits={} misses={}",
                r.connections,
                r.connect_failures,
                r.welcomed,
                r.bytes_sent,
                r.requests,
                r.replies,
                r.codes_text(),
                r.server_closed,
                r.resets,
                r.we_closed,
                r.unanswered,
                r.at_deadline,
                r.shutdowns,
                r.hits,
                r.misses,
            )?;
            if *kind == Kind::Flooder {
                let life = r.max_replies_lifetime.as_secs_f64().max(1e-3);
                write!(
                    f,
                    " fastest_replies={} fastest_replies_per_s={:.0} rate_after_burst_per_s={:.0}",
                    r.max_replies_one,
                    r.max_replies_one as f64 / life,
                    r.max_replies_one.saturating_sub(u64::from(self.rate_burst)) as f64 / life,
                )?;
            }
            writeln!(
                f,
                " verdict={} ({})",
                if verdict.ok { "ok" } else { "FAIL" },
                verdict.note
            )?;
        }
        Ok(())
    }
}
