//! Fan-out across loadgen processes: a room's senders in one process (one machine) and
//! its receivers in another.
//!
//! Three things make that work:
//! - **Roles** (`--role`): `both` (every member sends and receives, one process's rooms
//!   are its own), `send` (members join and send on schedule, deliveries are ignored) and
//!   `receive` (members join and measure deliveries, nothing is sent).
//! - **Global ids** (`--client-offset N`): a process's client `i` writes `N + i` into its
//!   stamps (and text-mode nicks), so senders in several processes never collide; a
//!   receiver keeps one sequence tracker per sender it meets (`SenderStreams::Open`),
//!   without knowing beforehand how many there are.
//! - **Comparable stamps** (`StampBase`): with `--start-at`, the times in a stamp count
//!   from that wall-clock instant (mapped onto the monotonic run clock once, at startup)
//!   rather than from the run clock's own zero, so a receiver in another process reads a
//!   sender's intended send time on its own clock. The error of such a latency is the
//!   offset between the two machines' wall clocks (see [`crate::clock_offset`]).
//!
//! Rooms are matched by number: a process's client `i` is in room `i / --room-size`
//! (this process's members per room), named from the `--start-at` instant, so every
//! process given the same instant joins the same rooms. After the run each process
//! writes what it knows per room (`LABEL-STAMP.rooms.csv`: members, messages sent,
//! deliveries received); `loadgen merge` adds the files up and computes the loss that no
//! single process can know.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::stamp::Stamp;
use crate::verify::{Arrival, SequenceTracker};

/// What the clients of one process do in the room scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Send on schedule and measure every delivery (one process's rooms are its own).
    #[default]
    Both,
    /// Join and send on schedule; deliveries are not counted or measured.
    Send,
    /// Join and count and measure deliveries from senders in other processes; send
    /// nothing.
    Receive,
}

impl Role {
    /// The name on the command line and in the `role` column.
    pub fn name(self) -> &'static str {
        match self {
            Role::Both => "both",
            Role::Send => "send",
            Role::Receive => "receive",
        }
    }

    /// Whether clients send their scheduled messages.
    pub fn sends(self) -> bool {
        self != Role::Receive
    }

    /// Whether clients count and measure deliveries.
    pub fn receives(self) -> bool {
        self != Role::Send
    }

    /// Whether the run is one part of a fan-out over several processes.
    pub fn is_split(self) -> bool {
        self != Role::Both
    }
}

/// Command-line options for fan-out across processes (flattened into the run options).
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Room scenario: `both` sends and measures, `send` only sends, `receive` only
    /// measures (needs --start-at; senders and receivers run in separate processes).
    #[arg(long, value_enum, default_value_t = Role::Both)]
    pub role: Role,
    /// Global id of this process's first client, so ids in stamps and nicks never
    /// collide across processes.
    #[arg(long, default_value_t = 0)]
    pub client_offset: u32,
}

/// Why a fan-out configuration cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// Senders and receivers meet in rooms; echo and dm have none to share.
    #[error("--role {0} needs --scenario room (senders and receivers meet in rooms)")]
    NeedsRoom(&'static str),
    /// Resuming after churn is not combined with split roles.
    #[error("--role {0} does not support --churn")]
    WithChurn(&'static str),
    /// Stamps are comparable across processes only on clocks anchored at one instant.
    #[error(
        "--role {0} needs --start-at (every process's stamps count from that wall-clock instant)"
    )]
    NeedsStartAt(&'static str),
    /// `--client-offset` plus `--clients` does not fit a 32-bit client id.
    #[error("--client-offset {offset} with --clients {clients} exceeds the largest client id")]
    OffsetTooLarge {
        /// `--client-offset`.
        offset: u32,
        /// `--clients`.
        clients: u32,
    },
}

/// Checks the fan-out options against the rest of the configuration.
pub(crate) fn validate(config: &crate::Config) -> Result<(), FanoutError> {
    let role = config.role;
    if config.client_offset.checked_add(config.clients).is_none() {
        return Err(FanoutError::OffsetTooLarge {
            offset: config.client_offset,
            clients: config.clients,
        });
    }
    if !role.is_split() {
        return Ok(());
    }
    if config.scenario != crate::Scenario::Room {
        return Err(FanoutError::NeedsRoom(role.name()));
    }
    if config.churn > 0.0 {
        return Err(FanoutError::WithChurn(role.name()));
    }
    if config.start_at.is_none() {
        return Err(FanoutError::NeedsStartAt(role.name()));
    }
    Ok(())
}

/// The part of room names that tells one run's rooms from another's: random per run
/// (`random`), or, for split roles, derived from the `--start-at` instant so that every
/// process given that instant joins the same rooms.
pub(crate) fn room_token(role: Role, start_at: Option<SystemTime>, random: String) -> String {
    match (role.is_split(), start_at) {
        (true, Some(at)) => {
            let ms = at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            // FNV-1a over the instant's milliseconds, folded to 32 bits.
            let hash = ms
                .to_le_bytes()
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            format!("f{:08x}", (hash ^ (hash >> 32)) as u32)
        }
        _ => random,
    }
}

/// The `role` of a merged row whose inputs were parts of a fan-out: its latencies were
/// taken across processes.
pub const MERGED_ROLE: &str = "fan-out";

/// Highest sequence number a receiver accepts from a sender in another process, whose
/// rate it does not know: 2^24 messages (over four hours at 1000 per second). Bounds the
/// memory a forged stamp can make a tracker take.
pub(crate) const FOREIGN_MAX_SEQ: u32 = 1 << 24;

/// How stamps are written and read: client ids shifted by `--client-offset`, times
/// counted from the `--start-at` instant. Without `--start-at` and offset it changes
/// nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StampBase {
    /// What this process's clients do.
    pub role: Role,
    /// Added to local client ids in stamps (global id of local client 0).
    pub client_offset: u32,
    /// The `--start-at` instant on the run clock (ns, negative if before its zero); 0
    /// without `--start-at`, when stamps stay on the run clock.
    pub anchor_ns: i64,
}

impl StampBase {
    /// The stamp as it goes on the wire: global id, times from the anchor.
    pub(crate) fn outgoing(&self, stamp: &Stamp) -> Stamp {
        Stamp {
            client: stamp.client.wrapping_add(self.client_offset),
            seq: stamp.seq,
            scheduled_ns: shift(stamp.scheduled_ns, -self.anchor_ns),
            sent_ns: shift(stamp.sent_ns, -self.anchor_ns),
        }
    }

    /// A stamp read from the wire, back on this process's run clock and with the
    /// sender's id relative to this process's first client (a sender in another process
    /// gets an id outside `0..--clients`, which only `--role receive` accepts).
    pub(crate) fn incoming(&self, stamp: Stamp) -> Stamp {
        Stamp {
            client: stamp.client.wrapping_sub(self.client_offset),
            seq: stamp.seq,
            scheduled_ns: shift(stamp.scheduled_ns, self.anchor_ns),
            sent_ns: shift(stamp.sent_ns, self.anchor_ns),
        }
    }
}

/// `t + by`, clamped to `0..=u64::MAX`.
fn shift(t: u64, by: i64) -> u64 {
    let moved = i128::from(t) + i128::from(by);
    moved.clamp(0, i128::from(u64::MAX)) as u64
}

/// The sequence trackers one receiver keeps, one per sender.
#[derive(Debug, Clone)]
pub(crate) enum SenderStreams {
    /// Senders known in advance, the receiver's own group (itself, its pair, its room),
    /// indexed by `id - start`.
    Group {
        start: u32,
        trackers: Vec<SequenceTracker>,
    },
    /// Senders in other processes, met as their messages arrive (`--role receive`).
    Open(HashMap<u32, SequenceTracker>),
}

impl SenderStreams {
    /// The trackers for a client of `role` whose group starts at `start` and has `len`
    /// members.
    pub(crate) fn new(role: Role, start: u32, len: u32) -> Self {
        match role {
            Role::Receive => SenderStreams::Open(HashMap::new()),
            Role::Both | Role::Send => SenderStreams::Group {
                start,
                trackers: vec![SequenceTracker::default(); len as usize],
            },
        }
    }

    /// Whether messages from `sender` (a local id, see [`StampBase::incoming`]) can
    /// arrive here.
    pub(crate) fn accepts(&self, sender: u32) -> bool {
        match self {
            SenderStreams::Group { start, trackers } => {
                (sender.wrapping_sub(*start) as usize) < trackers.len()
            }
            SenderStreams::Open(_) => true,
        }
    }

    /// Notes the arrival of `seq` from `sender`, which [`SenderStreams::accepts`].
    pub(crate) fn record(&mut self, sender: u32, seq: u32) -> Arrival {
        match self {
            SenderStreams::Group { start, trackers } => {
                match trackers.get_mut(sender.wrapping_sub(*start) as usize) {
                    Some(tracker) => tracker.record(seq),
                    None => Arrival::Duplicate,
                }
            }
            SenderStreams::Open(by_sender) => by_sender.entry(sender).or_default().record(seq),
        }
    }
}

/// What one process knows about one room after a run: a line of its `.rooms.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomTally {
    /// Room number (the same room in every process given the same `--start-at`).
    pub room: u32,
    /// This process's role (`send` or `receive`).
    pub role: String,
    /// This process's members of the room that were ready when sending began.
    pub members: u64,
    /// Measured messages those members sent.
    pub sent: u64,
    /// Distinct measured deliveries those members received (from any sender).
    pub received: u64,
}

/// Per-room counts of one process, gathered after a split-role run.
#[derive(Debug)]
pub(crate) struct RoomTallies {
    /// Only split-role runs keep (and write) them.
    role: Option<Role>,
    room_size: u32,
    rooms: std::collections::BTreeMap<u32, RoomTally>,
}

impl RoomTallies {
    /// Empty tallies for a run of `config`.
    pub(crate) fn new(config: &crate::Config) -> Self {
        Self {
            role: config.role.is_split().then_some(config.role),
            room_size: config.group_size(),
            rooms: std::collections::BTreeMap::new(),
        }
    }

    /// Counts one member that was ready when sending began, with the measured
    /// messages it sent and the distinct deliveries it received.
    pub(crate) fn add(&mut self, plan: &crate::client::ClientPlan, sent: u64, received: u64) {
        let Some(role) = self.role else { return };
        let room = plan.group_start / self.room_size;
        let tally = self.rooms.entry(room).or_insert_with(|| RoomTally {
            room,
            role: role.name().into(),
            members: 0,
            sent: 0,
            received: 0,
        });
        tally.members += 1;
        tally.sent += sent;
        tally.received += received;
    }

    /// Writes `LABEL-STAMP.rooms.csv` beside the run's series (split roles only).
    pub(crate) fn write(&self, series: &Path) -> Result<(), crate::results::ResultsError> {
        if self.role.is_none() {
            return Ok(());
        }
        let rooms: Vec<RoomTally> = self.rooms.values().cloned().collect();
        write_rooms(&rooms_path(series), &rooms)
    }
}

/// Lines for the printed account of a run: its role and what it cannot know, and the
/// clock offset to the server.
pub fn account_lines(s: &crate::Summary) -> String {
    let mut out = String::new();
    match s.role.as_deref() {
        Some("send") => {
            out += "  role send: deliveries are counted by the receiving processes; \
                    `loadgen merge` with their runs gives loss and latency\n";
        }
        Some("receive") => {
            out += "  role receive: latencies run from the senders' intended times on their \
                    machines' clocks; loss needs the senders' counts (`loadgen merge`)\n";
        }
        _ => {}
    }
    if let (Some(offset), Some(bound)) = (s.clock_offset_us, s.clock_offset_bound_us) {
        out += &format!(
            "  clock offset to the server {offset:+} us, within +-{bound} us (Echo round trips)\n"
        );
    } else if let Some(bound) = s.clock_offset_bound_us {
        out += &if s.role.as_deref() == Some(MERGED_ROLE) {
            format!(
                "  clock offset between the processes at most {bound} us: latencies across \
                 processes are uncertain by that much\n"
            )
        } else {
            format!(
                "  clock offset between the processes at most {bound} us (aligns their \
                 seconds; every latency was taken within one process)\n"
            )
        };
    } else if s.role.is_some() {
        out += "  clock offset to the server: not measured; latencies across processes \
                carry the machines' unknown clock offset\n";
    }
    out
}

/// The `.rooms.csv` beside a run, found from its `.series.csv`.
pub fn rooms_path(series: &Path) -> PathBuf {
    let name = series
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.strip_suffix(".series.csv").unwrap_or(name);
    series.with_file_name(format!("{stem}.rooms.csv"))
}

/// Writes a run's per-room counts.
pub fn write_rooms(path: &Path, rooms: &[RoomTally]) -> Result<(), crate::results::ResultsError> {
    let err = |e: csv::Error| crate::results::ResultsError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    for room in rooms {
        w.serialize(room).map_err(err)?;
    }
    w.flush()
        .map_err(|source| crate::results::ResultsError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a run's per-room counts.
pub fn read_rooms(path: &Path) -> Result<Vec<RoomTally>, crate::results::ResultsError> {
    let err = |e: csv::Error| crate::results::ResultsError::Format {
        path: path.to_path_buf(),
        reason: format!("not a loadgen rooms file: {e}"),
    };
    let mut r = csv::Reader::from_path(path).map_err(err)?;
    r.deserialize().map(|row| row.map_err(err)).collect()
}

/// Deliveries due and received over several processes' rooms: every measured message
/// sent into a room is due once at every receiving member of that room, in any process.
pub fn fanout_accounting<'a>(rooms: impl IntoIterator<Item = &'a RoomTally>) -> (u64, u64) {
    let mut by_room: HashMap<u32, (u64, u64, u64)> = HashMap::new();
    for r in rooms {
        let entry = by_room.entry(r.room).or_default();
        entry.0 += r.sent;
        if r.role != Role::Send.name() {
            entry.1 += r.members;
        }
        entry.2 += r.received;
    }
    by_room.values().fold((0, 0), |(expected, received), r| {
        (expected + r.0 * r.1, received + r.2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_the_wire_form() {
        let base = StampBase {
            role: Role::Both,
            client_offset: 100,
            anchor_ns: 1_500_000_000,
        };
        let stamp = Stamp {
            client: 3,
            seq: 7,
            scheduled_ns: 2_000_000_000,
            sent_ns: 2_000_000_500,
        };
        let wire = base.outgoing(&stamp);
        assert_eq!(wire.client, 103);
        assert_eq!(wire.scheduled_ns, 500_000_000);
        assert_eq!(base.incoming(wire), stamp);
    }

    #[test]
    fn another_process_reads_the_same_instant() {
        // Process A's run clock started 0.3 s before B's: the same wall instant is
        // 0.3 s further on A's clock, and the anchors differ by as much.
        let a = StampBase {
            role: Role::Send,
            client_offset: 0,
            anchor_ns: 2_300_000_000,
        };
        let b = StampBase {
            role: Role::Receive,
            client_offset: 10,
            anchor_ns: 2_000_000_000,
        };
        let sent = Stamp {
            client: 4,
            seq: 1,
            scheduled_ns: 2_500_000_000,
            sent_ns: 2_500_000_000,
        };
        let read = b.incoming(a.outgoing(&sent));
        assert_eq!(read.scheduled_ns, 2_200_000_000);
        // A sender id outside B's own clients.
        assert_eq!(read.client, 4u32.wrapping_sub(10));
    }

    #[test]
    fn times_before_the_anchor_clamp_to_zero() {
        assert_eq!(shift(5, -10), 0);
        assert_eq!(shift(u64::MAX, 10), u64::MAX);
    }

    #[test]
    fn open_streams_take_any_sender() {
        let mut open = SenderStreams::new(Role::Receive, 0, 1);
        assert!(open.accepts(9_999));
        assert_eq!(open.record(9_999, 0), Arrival::InOrder);
        assert_eq!(open.record(9_999, 0), Arrival::Duplicate);
        assert_eq!(open.record(5, 0), Arrival::InOrder);
        let group = SenderStreams::new(Role::Both, 10, 2);
        assert!(group.accepts(11));
        assert!(!group.accepts(12));
        assert!(!group.accepts(9));
    }

    #[test]
    fn rooms_of_several_processes_add_up() {
        let row = |room, role: Role, members, sent, received| RoomTally {
            room,
            role: role.name().into(),
            members,
            sent,
            received,
        };
        let rooms = [
            row(0, Role::Send, 2, 100, 0),
            row(1, Role::Send, 2, 50, 0),
            row(0, Role::Receive, 3, 0, 300),
            row(1, Role::Receive, 4, 0, 190),
            row(0, Role::Receive, 1, 0, 100),
        ];
        // Room 0: 100 x 4 receivers; room 1: 50 x 4.
        assert_eq!(fanout_accounting(&rooms), (600, 590));
    }

    #[test]
    fn rooms_file_sits_beside_the_series() {
        assert_eq!(
            rooms_path(Path::new("out/room-binary-20261203T170000Z.series.csv")),
            PathBuf::from("out/room-binary-20261203T170000Z.rooms.csv")
        );
    }

    #[test]
    fn split_room_tokens_depend_only_on_the_instant() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_123);
        let a = room_token(Role::Send, Some(at), "aaaa".into());
        let b = room_token(Role::Receive, Some(at), "bbbb".into());
        assert_eq!(a, b);
        assert_eq!(room_token(Role::Both, Some(at), "cccc".into()), "cccc");
    }
}
