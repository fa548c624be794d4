//! The node's lease: renewing it, burying nodes whose lease ran out (their users'
//! nicks, memberships and private chats), and claiming this node's users again after
//! Redis was unreachable. On the command thread.

use std::sync::atomic::Ordering;

use super::bridge::Bridge;
use super::keys;
use super::private;
use crate::engine::{NOTICE_MAX_MEMBERS, Refusal};

impl Bridge {
    /// Renews the lease, and buries the nodes whose lease ran out.
    pub(super) fn heartbeat(&mut self) {
        let node = self.core.node.clone();
        let keys = self.keys().clone();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let renewed = self.with(|conn, _| {
            redis::pipe()
                .cmd("SET")
                .arg(keys.lease(&node))
                .arg(1)
                .arg("PX")
                .arg(lease_ms)
                .arg("GET")
                .cmd("SADD")
                .arg(keys.nodes())
                .arg(&node)
                .ignore()
                .cmd("SMEMBERS")
                .arg(keys.nodes())
                .query::<(Option<String>, Vec<String>)>(conn)
        });
        let Ok((before, nodes)) = renewed else {
            return;
        };
        if before.is_none() && !self.held.is_empty() {
            // The lease had run out: another node may have buried this one meanwhile.
            tracing::warn!("this node's lease had run out; claiming its users again");
            self.claim_again();
        }
        let mut alive = 0;
        for other in nodes {
            let lease = keys.lease(&other);
            match self.with(|conn, _| redis::cmd("EXISTS").arg(&lease).query::<bool>(conn)) {
                Ok(true) => alive += 1,
                Ok(false) => {
                    tracing::warn!(
                        node = other,
                        "cluster node's lease ran out; removing its users"
                    );
                    let _ = self.bury(&other);
                }
                Err(_) => return,
            }
        }
        self.core.counters.nodes.store(alive, Ordering::Relaxed);
    }

    /// Removes what an earlier node of this name left behind.
    pub(super) fn bury_self(&mut self) {
        let node = self.core.node.clone();
        if let Err(refusal) = self.bury(&node) {
            tracing::warn!("cannot clear this node's earlier claims: {}", refusal.text);
        }
    }

    /// Removes what `node` held in Redis, and tells the partners of its users' chats.
    pub(super) fn bury(&mut self, node: &str) -> Result<(), Refusal> {
        let keys = self.keys().clone();
        let (_removed, endings): (i64, Vec<private::BuriedEnding>) =
            self.with(|conn, scripts| {
                scripts
                    .bury
                    .key(keys.nodes())
                    .key(keys.node_nicks(node))
                    .key(keys.node_rooms(node))
                    .key(keys.node_users(node))
                    .arg(keys.prefix())
                    .arg(node)
                    .arg(NOTICE_MAX_MEMBERS)
                    .invoke(conn)
            })?;
        for (owner, nick, partner, chat, withdrawn, declined) in endings {
            let Some((_, id)) = keys::parse_owner(&owner) else {
                continue;
            };
            let ending = private::Ending {
                partner,
                chat,
                withdrawn,
                declined,
            };
            self.tell_departure(id, &nick, ending);
        }
        Ok(())
    }

    /// After an outage: claims every local user's nick and membership again (another
    /// node may have buried them meanwhile).
    pub(super) fn claim_again(&mut self) {
        let node = self.core.node.clone();
        let keys = self.core.keys.clone();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // The lease first: until it is back, another node may bury this one.
        let renewed: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(keys.lease(&node))
            .arg(1)
            .arg("PX")
            .arg(lease_ms)
            .ignore()
            .cmd("SADD")
            .arg(keys.nodes())
            .arg(&node)
            .ignore()
            .query(conn);
        let mut failed = renewed.err();
        let mut lost = 0;
        for (&id, held) in &self.held {
            if failed.is_some() {
                break;
            }
            let owner = keys::owner(&node, id);
            if let Some((key, record)) = &held.nick {
                let member = keys::member(&node, id);
                let who = keys::parse_nick_record(record)
                    .map(|o| keys::who_record(o.mode, o.nick))
                    .unwrap_or_default();
                let claimed: redis::RedisResult<i64> = self
                    .scripts
                    .claim
                    .key(key)
                    .key(keys.node_nicks(&node))
                    .key(keys.who(&member))
                    .key(keys.node_users(&node))
                    .arg(record)
                    .arg(&owner)
                    .arg("")
                    .arg(who)
                    .arg(&member)
                    .invoke(conn);
                match claimed {
                    Ok(1) => {}
                    Ok(_) => lost += 1,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let nick = held
                .nick
                .as_ref()
                .and_then(|(_, record)| keys::parse_nick_record(record))
                .map(|o| o.nick.to_owned())
                .unwrap_or_default();
            for folded in &held.rooms {
                let restored: redis::RedisResult<()> = redis::pipe()
                    .cmd("HSET")
                    .arg(keys.room(folded, "members"))
                    .arg(owner.trim_end_matches('|'))
                    .arg(&nick)
                    .ignore()
                    .cmd("SADD")
                    .arg(keys.rooms())
                    .arg(folded)
                    .ignore()
                    .cmd("SADD")
                    .arg(keys.node_rooms(&node))
                    .arg(folded)
                    .ignore()
                    .query(conn);
                if let Err(e) = restored {
                    failed = Some(e);
                    break;
                }
            }
        }
        if lost > 0 {
            tracing::warn!(lost, "nicks taken by others while Redis was unreachable");
        }
        if let Some(e) = failed {
            // Stop at the first failure: the next attempt starts over.
            self.failed(&e);
        }
    }
}
