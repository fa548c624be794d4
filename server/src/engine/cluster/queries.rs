//! Reading the shared state for lists and history pages, on the command thread.

use bytes::Bytes;
use shared::RoomInfo;
use shared::names::fold;

use super::bridge::{Bridge, encode, unknown_id};
use super::keys;
use crate::engine::{Listing, Page, Refusal};

impl Bridge {
    pub(super) fn rooms(&mut self, limit: usize) -> Result<Listing<RoomInfo>, Refusal> {
        let keys = self.keys().clone();
        let mut folded: Vec<String> =
            self.with(|conn, _| redis::cmd("SMEMBERS").arg(keys.rooms()).query(conn))?;
        folded.sort();
        let hidden = folded.len().saturating_sub(limit);
        folded.truncate(limit);
        let mut pipe = redis::pipe();
        for room in &folded {
            pipe.cmd("GET").arg(keys.room(room, "name"));
            pipe.cmd("HLEN").arg(keys.room(room, "members"));
        }
        let answers: Vec<redis::Value> = self.with(|conn, _| pipe.query(conn))?;
        let items = folded
            .iter()
            .zip(answers.chunks(2))
            .filter_map(|(room, pair)| {
                let name: Option<String> = redis::from_redis_value_ref(&pair[0]).ok()?;
                let members: u32 = redis::from_redis_value_ref(pair.get(1)?).ok()?;
                (members > 0).then(|| RoomInfo {
                    name: name.unwrap_or_else(|| room.clone()),
                    members,
                })
            })
            .collect();
        Ok(Listing { items, hidden })
    }

    pub(super) fn who(
        &mut self,
        room: &str,
        limit: usize,
    ) -> Result<(String, Listing<String>), Refusal> {
        let keys = self.keys().clone();
        let folded = fold(room).into_owned();
        let (name, mut nicks): (Option<String>, Vec<String>) = self.with(|conn, _| {
            redis::pipe()
                .cmd("GET")
                .arg(keys.room(&folded, "name"))
                .cmd("HVALS")
                .arg(keys.room(&folded, "members"))
                .query(conn)
        })?;
        let Some(name) = name.filter(|_| !nicks.is_empty()) else {
            return Err(Refusal::no_such_room(room));
        };
        nicks.sort_by_cached_key(|nick| fold(nick).into_owned());
        let hidden = nicks.len().saturating_sub(limit);
        nicks.truncate(limit);
        Ok((
            name,
            Listing {
                items: nicks,
                hidden,
            },
        ))
    }

    pub(super) fn history(
        &mut self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<(String, Page), Refusal> {
        let keys = self.keys().clone();
        let folded = fold(room).into_owned();
        let (name, last, base, log): (Option<String>, Option<u64>, Option<u64>, Vec<Vec<u8>>) =
            self.with(|conn, _| {
                redis::pipe()
                    .cmd("GET")
                    .arg(keys.room(&folded, "name"))
                    .cmd("GET")
                    .arg(keys.room(&folded, "seq"))
                    .cmd("GET")
                    .arg(keys.room(&folded, "base"))
                    .cmd("LRANGE")
                    .arg(keys.room(&folded, "log"))
                    .arg(0)
                    .arg(-1)
                    .query(conn)
            })?;
        let (Some(name), Some(last)) = (name, last) else {
            return Err(Refusal::no_such_room(room));
        };
        let base = base.unwrap_or(last);
        let end = if before == 0 { last + 1 } else { before };
        if !(base + 1..=last + 1).contains(&end) {
            return Err(unknown_id(&name, before));
        }
        let kept: Vec<Bytes> = log
            .iter()
            .filter_map(|entry| keys::parse_envelope(entry))
            .filter(|message| message.id < end)
            .filter_map(|message| encode(&name, &message))
            .collect();
        let start = kept.len().saturating_sub(limit);
        Ok((
            name,
            Page {
                more: start > 0,
                messages: kept[start..].to_vec(),
            },
        ))
    }
}
