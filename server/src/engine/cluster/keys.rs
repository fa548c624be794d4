//! The names of the cluster's Redis keys and channels, and the records stored in them.
//!
//! Every name starts with `chat:` and the database number, so clusters sharing one
//! Redis on different databases stay apart (pub/sub channels are not per database).
//!
//! | name | type | holds |
//! |---|---|---|
//! | `P:nodes` | set | names of the nodes that announced themselves |
//! | `P:node:N` | string, expiring | node N's lease |
//! | `P:node:N:nicks` | set | nick keys node N claimed (cleaned up when it dies) |
//! | `P:node:N:rooms` | set | rooms (folded) node N has members in |
//! | `P:nick:F` | string | the owner of nick F: `NODE\|W.S.G\|MODE\|NICK` |
//! | `P:who:NODE\|W.S.G` | string | that connection's `MODE\|NICK` |
//! | `P:node:N:users` | set | owners (`NODE\|W.S.G`) of node N's users |
//! | `P:pc:NODE\|W.S.G` | hash | private chat: `partner`, `chat`, `asked` (owners) |
//! | `P:pc:NODE\|W.S.G:askers` | set | owners that asked this user for a chat |
//! | `P:chats` | counter | private-chat numbers |
//! | `P:guests` | counter | blocks of guest numbers handed to nodes |
//! | `P:rooms` | set | rooms (folded) with members |
//! | `P:room:F:name` | string | room F's display name |
//! | `P:room:F:seq` | string | room F's latest message id |
//! | `P:room:F:base` | string | the id room F's first life started after |
//! | `P:room:F:log` | list | room F's kept messages (envelopes), oldest first |
//! | `P:room:F:members` | hash | `NODE\|W.S.G` to nick, for every member |
//! | channel `P:room:F` | pub/sub | room F's messages (envelopes), in id order |
//! | channel `P:node:N` | pub/sub | frames for users on node N (direct messages, private chats) |
//! | channel `P:all` | pub/sub | renames, for room mates on other nodes |
//!
//! An envelope is `ID\nTIME_NS\nFROM\nTEXT`: ids and nicks hold no newline, and the
//! text is the rest. A room channel also carries joins and leaves, `J` or `L`, then
//! `\nNODE|W.S.G\nMEMBERS\nLAST\nNICK` (`LAST` is 0 for a leave). A node channel
//! carries frames in the envelope of [`frame_envelope`].

use shared::Mode;

use crate::engine::ConnId;
use crate::session::Scope;

/// Key and channel names of one cluster (one Redis database).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    /// Names for database `db`.
    pub(super) fn new(db: i64) -> Self {
        Self {
            prefix: format!("chat:{db}:"),
        }
    }

    /// The common prefix (for scripts that build names).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub(super) fn lease(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    pub(super) fn node_nicks(&self, node: &str) -> String {
        format!("{}node:{node}:nicks", self.prefix)
    }

    pub(super) fn node_rooms(&self, node: &str) -> String {
        format!("{}node:{node}:rooms", self.prefix)
    }

    pub(super) fn nick(&self, folded: &str) -> String {
        format!("{}nick:{folded}", self.prefix)
    }

    pub(super) fn guests(&self) -> String {
        format!("{}guests", self.prefix)
    }

    pub(super) fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// `P:room:F:PART`.
    pub(super) fn room(&self, folded: &str, part: &str) -> String {
        format!("{}room:{folded}:{part}", self.prefix)
    }

    pub(super) fn room_channel(&self, folded: &str) -> String {
        format!("{}room:{folded}", self.prefix)
    }

    /// `P:who:OWNER`.
    pub(super) fn who(&self, owner: &str) -> String {
        format!("{}who:{owner}", self.prefix)
    }

    pub(super) fn node_users(&self, node: &str) -> String {
        format!("{}node:{node}:users", self.prefix)
    }

    /// The channel every node subscribes to.
    pub(super) fn all_channel(&self) -> String {
        format!("{}all", self.prefix)
    }

    /// Whether `channel` is [`Keys::all_channel`].
    pub(super) fn is_all_channel(&self, channel: &str) -> bool {
        channel.strip_prefix(&self.prefix) == Some("all")
    }

    pub(super) fn node_channel(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// The folded room name of a room channel, or `None` for another channel.
    pub(super) fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(&self.prefix)?
            .strip_prefix("room:")
            .filter(|room| !room.contains(':'))
    }
}

/// Whether `name` can name a node: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
pub fn valid_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `NODE|W.S.G|`: what every record of one connection starts with.
pub(super) fn owner(node: &str, id: ConnId) -> String {
    format!("{node}|{}|", conn_text(id))
}

/// `NODE|W.S.G`: a connection anywhere in the cluster.
pub(super) fn member(node: &str, id: ConnId) -> String {
    format!("{node}|{}", conn_text(id))
}

/// `W.S.G`.
pub(super) fn conn_text(id: ConnId) -> String {
    format!("{}.{}.{}", id.worker, id.slot, id.generation)
}

fn parse_conn(text: &str) -> Option<ConnId> {
    let mut parts = text.split('.').map(str::parse::<u32>);
    let (worker, slot, generation) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    parts.next().is_none().then_some(ConnId {
        worker,
        slot,
        generation,
    })
}

fn mode_char(mode: Mode) -> char {
    match mode {
        Mode::Binary => 'b',
        Mode::Text => 't',
    }
}

fn parse_mode(text: &str) -> Option<Mode> {
    match text {
        "b" => Some(Mode::Binary),
        "t" => Some(Mode::Text),
        _ => None,
    }
}

/// The record of a nick's owner.
pub(super) fn nick_record(node: &str, id: ConnId, mode: Mode, nick: &str) -> String {
    format!("{}{}|{nick}", owner(node, id), mode_char(mode))
}

/// A nick's owner as its record names it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NickOwner<'a> {
    pub(super) node: &'a str,
    pub(super) id: ConnId,
    pub(super) mode: Mode,
    pub(super) nick: &'a str,
}

pub(super) fn parse_nick_record(record: &str) -> Option<NickOwner<'_>> {
    let mut parts = record.splitn(4, '|');
    Some(NickOwner {
        node: parts.next()?,
        id: parse_conn(parts.next()?)?,
        mode: parse_mode(parts.next()?)?,
        nick: parts.next()?,
    })
}

/// A room message as it travels and is kept.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Envelope<'a> {
    pub(super) id: u64,
    pub(super) time_ns: u64,
    pub(super) from: &'a str,
    pub(super) text: &'a str,
}

pub(super) fn parse_envelope(bytes: &[u8]) -> Option<Envelope<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(4, '\n');
    Some(Envelope {
        id: parts.next()?.parse().ok()?,
        time_ns: parts.next()?.parse().ok()?,
        from: parts.next()?,
        text: parts.next()?,
    })
}

/// A join or leave seen on a room's channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Event<'a> {
    /// True for a join.
    pub(super) joined: bool,
    /// The member's node.
    pub(super) node: &'a str,
    /// The member's connection.
    pub(super) id: ConnId,
    /// Members after the change.
    pub(super) members: u32,
    /// For a join: the room's latest id at the join.
    pub(super) last: u64,
    pub(super) nick: &'a str,
}

/// A join or leave event, or `None` for anything else.
pub(super) fn parse_event(bytes: &[u8]) -> Option<Event<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(5, '\n');
    let joined = match parts.next()? {
        "J" => true,
        "L" => false,
        _ => return None,
    };
    let (node, conn) = parts.next()?.split_once('|')?;
    Some(Event {
        joined,
        node,
        id: parse_conn(conn)?,
        members: parts.next()?.parse().ok()?,
        last: parts.next()?.parse().ok()?,
        nick: parts.next()?,
    })
}

/// A frame for a connection of the receiving node: `F\nFROM_NODE\nW.S.G\nSCOPE\n`
/// and the frame in binary. `SCOPE` is `A` (anyone), or `C`, `S` or `E` (a chat's
/// message, start or end) then ` W.S.G CHAT` of the sender.
pub(super) fn frame_envelope(from_node: &str, to: ConnId, scope: Scope, frame: &[u8]) -> Vec<u8> {
    let scope = match scope {
        Scope::Chat { from, chat } => format!("C {} {chat}", conn_text(from)),
        Scope::ChatStart { from, chat } => format!("S {} {chat}", conn_text(from)),
        Scope::ChatEnd { from, chat } => format!("E {} {chat}", conn_text(from)),
        Scope::Anyone | Scope::Room(_) => "A".to_owned(),
    };
    let mut out = format!("F\n{from_node}\n{}\n{scope}\n", conn_text(to)).into_bytes();
    out.extend_from_slice(frame);
    out
}

/// A frame for a connection of this node, as [`frame_envelope`] wrote it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FrameEnvelope<'a> {
    pub(super) from_node: &'a str,
    pub(super) to: ConnId,
    pub(super) scope: Scope,
    pub(super) frame: &'a [u8],
}

pub(super) fn parse_frame_envelope(bytes: &[u8]) -> Option<FrameEnvelope<'_>> {
    let mut parts = bytes.splitn(5, |&b| b == b'\n');
    if parts.next()? != b"F" {
        return None;
    }
    let from_node = std::str::from_utf8(parts.next()?).ok()?;
    let to = parse_conn(std::str::from_utf8(parts.next()?).ok()?)?;
    let scope = std::str::from_utf8(parts.next()?).ok()?;
    let scope = match scope.split(' ').collect::<Vec<_>>().as_slice() {
        ["A"] => Scope::Anyone,
        [kind, from, chat] => {
            let (from, chat) = (parse_conn(from)?, chat.parse().ok()?);
            match *kind {
                "C" => Scope::Chat { from, chat },
                "S" => Scope::ChatStart { from, chat },
                "E" => Scope::ChatEnd { from, chat },
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(FrameEnvelope {
        from_node,
        to,
        scope,
        frame: parts.next()?,
    })
}

/// A rename for the room mates of other nodes: `N\nNODE\nOLD\nNEW\nROOMS`, the rooms
/// (folded, notice-sized) separated by tabs.
pub(super) fn rename_event(node: &str, old: &str, new: &str, rooms: &[&str]) -> String {
    format!("N\n{node}\n{old}\n{new}\n{}", rooms.join("\t"))
}

/// A rename as [`rename_event`] wrote it: node, old nick, new nick, rooms.
pub(super) fn parse_rename(bytes: &[u8]) -> Option<(&str, &str, &str, Vec<&str>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(5, '\n');
    if parts.next()? != "N" {
        return None;
    }
    let (node, old, new) = (parts.next()?, parts.next()?, parts.next()?);
    Some((node, old, new, parts.next()?.split('\t').collect()))
}

/// The record of who a connection is (`MODE|NICK`), kept under its owner.
pub(super) fn who_record(mode: Mode, nick: &str) -> String {
    format!("{}|{nick}", mode_char(mode))
}

pub(super) fn parse_who_record(record: &str) -> Option<(Mode, &str)> {
    let (mode, nick) = record.split_once('|')?;
    Some((parse_mode(mode)?, nick))
}

/// A connection as its owner string (`NODE|W.S.G`) names it.
pub(super) fn parse_owner(owner: &str) -> Option<(&str, ConnId)> {
    let (node, conn) = owner.split_once('|')?;
    Some((node, parse_conn(conn)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: ConnId = ConnId {
        worker: 1,
        slot: 22,
        generation: 333,
    };

    #[test]
    fn records_read_back_what_was_written() {
        let record = nick_record("n-1", ID, Mode::Text, "Zoë|x");
        let owner = parse_nick_record(&record).expect("parses");
        assert_eq!(
            owner,
            NickOwner {
                node: "n-1",
                id: ID,
                mode: Mode::Text,
                nick: "Zoë|x"
            }
        );
        assert!(record.starts_with(&super::owner("n-1", ID)));
        let scope = Scope::ChatEnd { from: ID, chat: 7 };
        let envelope = frame_envelope("n-2", ID, scope, b"\0\nbinary\n");
        let parsed = parse_frame_envelope(&envelope).expect("parses");
        assert_eq!(
            (parsed.from_node, parsed.to, parsed.scope),
            ("n-2", ID, scope)
        );
        assert_eq!(parsed.frame, b"\0\nbinary\n");
        let anyone = frame_envelope("n", ID, Scope::Anyone, b"x");
        assert_eq!(
            parse_frame_envelope(&anyone).expect("parses").scope,
            Scope::Anyone
        );
        assert_eq!(parse_who_record("t|Zoë|x"), Some((Mode::Text, "Zoë|x")));
        assert_eq!(parse_owner("n-1|1.22.333"), Some(("n-1", ID)));
        let envelope = parse_envelope(b"17\n99\nbob\nhi\nthere").expect("parses");
        assert_eq!((envelope.id, envelope.time_ns), (17, 99));
        assert_eq!((envelope.from, envelope.text), ("bob", "hi\nthere"));
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        for bad in [
            "",
            "x|a.2.3|b|n",
            "x|1.2.3|b",
            "n|1.2|b|n",
            "n|1.2.3|q|n",
            "n|1.2.3.4|b|n",
        ] {
            assert_eq!(parse_nick_record(bad), None, "{bad:?}");
        }
        for bad in [&b"x\n1\na\nb"[..], b"1\n2\nthree", b"\xff\n1\na\nb"] {
            assert_eq!(parse_envelope(bad), None, "{bad:?}");
        }
        for bad in [
            &b"F\nn\n1.2.3\nQ\nx"[..],
            b"F\nn\n1.2\nA\nx",
            b"G\nn\n1.2.3\nA\nx",
            b"F\nn\n1.2.3\nC 1.2.3\nx",
        ] {
            assert_eq!(parse_frame_envelope(bad), None, "{bad:?}");
        }
        assert_eq!(parse_owner("n-1"), None);
        let rename = rename_event("n", "old", "new", &["a", "b"]);
        assert_eq!(
            parse_rename(rename.as_bytes()),
            Some(("n", "old", "new", vec!["a", "b"]))
        );
        assert_eq!(parse_rename(b"N\nn\nold\nnew"), None);
        for bad in [
            &b"J\nn1.2.3\n1\n0\nx"[..],
            b"Q\nn|1.2.3\n1\n0\nx",
            b"J\nn|1.2.3\n-1\n0\nx",
        ] {
            assert_eq!(parse_event(bad), None, "{bad:?}");
        }
        let event = parse_event(b"L\nn|1.22.333\n3\n0\nbo|b").expect("parses");
        assert_eq!((event.joined, event.node, event.id), (false, "n", ID));
        assert_eq!((event.members, event.last, event.nick), (3, 0, "bo|b"));
        assert!(!valid_node_name("a|b") && !valid_node_name("") && valid_node_name("n-1.x_2"));
        let keys = Keys::new(3);
        assert_eq!(keys.room_of_channel("chat:3:room:lobby"), Some("lobby"));
        assert_eq!(keys.room_of_channel("chat:3:node:a"), None);
        assert_eq!(keys.room_of_channel("chat:4:room:lobby"), None);
    }
}
