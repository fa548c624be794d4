//! Client planning: the clients split into groups (one client, a dm pair, a room),
//! given nicks and rooms, and dealt to the load threads.

use crate::client::ClientPlan;
use crate::config::{Config, Scenario};

/// Splits the clients into groups (one client, a dm pair, or a room) and deals them to
/// threads: echo clients and dm pairs whole and round-robin (a pair's partner must be
/// on its thread), room members round-robin by id, so a big room spreads over every
/// thread (room accounting reads other threads' send counts).
pub(super) fn plan_clients(config: &Config, token: &str) -> Vec<Vec<ClientPlan>> {
    let size = config.group_size();
    let groups = config.clients.div_ceil(size);
    let units = match config.scenario {
        Scenario::Room => config.clients,
        Scenario::Echo | Scenario::Dm => groups,
    };
    let threads = config.threads.min(units as usize).max(1);
    let mut plans: Vec<Vec<ClientPlan>> = vec![Vec::new(); threads];
    for group in 0..groups {
        let start = group * size;
        let len = size.min(config.clients - start);
        // Nicks carry global ids (`--client-offset`), unique across processes.
        let nick = |id: u32| format!("lg{token}-{}", id + config.client_offset);
        for id in start..start + len {
            let (nick_name, room, partner_nick) = match config.scenario {
                Scenario::Echo => (None, None, None),
                Scenario::Dm => {
                    let partner = if id == start { start + 1 } else { start };
                    (Some(nick(id)), None, Some(nick(partner)))
                }
                Scenario::Room => {
                    // Binary clients are told apart by their stamps; text clients need
                    // a known nick to recognise their own join line.
                    let own =
                        (config.protocol != crate::config::Protocol::Binary).then(|| nick(id));
                    (own, Some(format!("lg-{token}-{group}")), None)
                }
            };
            let thread = match config.scenario {
                Scenario::Room => id as usize % threads,
                Scenario::Echo | Scenario::Dm => group as usize % threads,
            };
            plans[thread].push(ClientPlan {
                id,
                group_start: start,
                group_len: len,
                nick: nick_name,
                room,
                partner_nick,
            });
        }
    }
    plans
}
