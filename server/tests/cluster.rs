//! Several nodes sharing one world through a real Redis: Debian's `redis-server`,
//! started on a free loopback port with persistence off, never the one on 6379.
//! Nodes run in this process (each with its own node name) or, for the SIGKILL case,
//! as the built binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BinClient, TIMEOUT, TestServer, scrape};
use server::ClusterConfig;
use shared::{ErrorCode, Frame};

/// A `redis-server` of this test's own.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port, empty: persistence is off).
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < TIMEOUT, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node of the cluster of `redis`, in this process.
fn node(redis: &Redis, name: &str) -> TestServer {
    let mut cluster = ClusterConfig::new(redis.url());
    cluster.node_name = name.to_owned();
    TestServer::with(|config| config.cluster = Some(cluster))
}

fn say(client: &mut BinClient, room: &str, text: &str) {
    client.send(&Frame::Say {
        room: room.to_owned(),
        text: text.to_owned(),
    });
}

fn set_nick(client: &mut BinClient, nick: &str) -> Frame {
    client.send(&Frame::SetNick {
        nick: nick.to_owned(),
    });
    client.expect(|f| matches!(f, Frame::NickChanged { .. } | Frame::Error { .. }))
}

/// Room messages until `count` have come (other frames skipped): (id, from, text).
fn room_messages(client: &mut BinClient, count: usize) -> Vec<(u64, String, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        if let Frame::RoomMsg { id, from, text, .. } = client.recv() {
            got.push((id, from, text));
        }
    }
    got
}

/// Retries `attempt` until it gives `Some`, failing the test after `limit`.
fn eventually<T>(limit: Duration, what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn room_messages_reach_every_member_on_every_node_once_and_in_one_order() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut members = vec![
        BinClient::named(a.addr, "a1"),
        BinClient::named(a.addr, "a2"),
        BinClient::named(b.addr, "b1"),
        BinClient::named(b.addr, "b2"),
    ];
    for member in &mut members {
        member.join("hall");
    }
    const EACH: usize = 100;
    for i in 0..EACH {
        say(&mut members[0], "hall", &format!("a1 {i}"));
        say(&mut members[2], "hall", &format!("b1 {i}"));
    }
    let mut orders = Vec::new();
    for member in &mut members {
        let got = room_messages(member, 2 * EACH);
        let ids: Vec<u64> = got.iter().map(|(id, ..)| *id).collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "ids not consecutive: {ids:?}"
        );
        for sender in ["a1", "b1"] {
            let texts: Vec<&str> = got
                .iter()
                .filter(|(_, from, _)| from == sender)
                .map(|(.., text)| text.as_str())
                .collect();
            let want: Vec<String> = (0..EACH).map(|i| format!("{sender} {i}")).collect();
            assert_eq!(texts, want, "{sender}'s messages, once each and in order");
        }
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every member sees one order"
    );
    // Nothing more: no member gets a message twice.
    say(&mut members[1], "hall", "last");
    for member in &mut members {
        let (_, _, text) = room_messages(member, 1).remove(0);
        assert_eq!(text, "last");
    }
}

#[test]
fn the_cluster_view_is_in_stats_and_metrics() {
    let redis = Redis::start();
    let mut first = ClusterConfig::new(redis.url());
    first.node_name = "a".to_owned();
    let a = TestServer::with(|config| {
        config.cluster = Some(first);
        config.metrics = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let b = node(&redis, "b");
    let metrics = a.metrics_addr().expect("metrics are on");
    // Each node counts the live nodes at its lease renewals (every third of 5 s).
    eventually(TIMEOUT, "both nodes to be seen", || {
        (scrape(metrics)["chat_cluster_nodes{}"] == 2.0).then_some(())
    });
    let scraped = scrape(metrics);
    assert_eq!(scraped["chat_cluster_redis_up{}"], 1.0);
    assert_eq!(scraped["chat_cluster_refused_total{}"], 0.0);
    let mut ann = BinClient::named(b.addr, "ann");
    ann.send(&Frame::GetStats);
    let Frame::Stats { entries } = ann.expect(|f| matches!(f, Frame::Stats { .. })) else {
        unreachable!()
    };
    let stat = |name: &str| entries.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    assert_eq!(stat("cluster_redis_up"), Some(1));
    assert!(stat("cluster_nodes").is_some() && stat("cluster_gaps") == Some(0));
}

#[test]
fn a_nick_is_held_by_one_connection_in_the_whole_cluster() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut clients: Vec<BinClient> = (0..16)
        .map(|i| BinClient::connect(if i % 2 == 0 { a.addr } else { b.addr }))
        .collect();
    for client in &mut clients {
        client.send(&Frame::SetNick {
            nick: "Same".to_owned(),
        });
    }
    let mut winners = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        match client.expect(|f| matches!(f, Frame::NickChanged { .. } | Frame::Error { .. })) {
            Frame::NickChanged { new, .. } => {
                assert_eq!(new, "Same");
                winners.push(i);
            }
            Frame::Error { code, .. } => assert_eq!(code, ErrorCode::NICK_TAKEN),
            other => unreachable!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one connection holds the nick");
    // Case-folded, and freed when its holder leaves.
    let winner = winners[0];
    let other = if winner % 2 == 0 { b.addr } else { a.addr };
    let mut late = BinClient::connect(other);
    assert!(
        matches!(set_nick(&mut late, "sAME"), Frame::Error { code, .. } if code == ErrorCode::NICK_TAKEN)
    );
    drop(clients.remove(winner));
    eventually(TIMEOUT, "the nick to be freed", || {
        matches!(set_nick(&mut late, "same"), Frame::NickChanged { .. }).then_some(())
    });
}

#[test]
fn direct_messages_cross_nodes_and_lists_show_every_node() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = BinClient::named(a.addr, "ann");
    let mut bob = BinClient::named(b.addr, "bob");
    ann.send(&Frame::Direct {
        to: "BOB".to_owned(),
        text: "hello across".to_owned(),
    });
    let got = bob.expect(|f| matches!(f, Frame::DirectMsg { .. }));
    assert_eq!(
        got,
        Frame::DirectMsg {
            from: "ann".to_owned(),
            text: "hello across".to_owned()
        }
    );
    ann.send(&Frame::Direct {
        to: "nobody".to_owned(),
        text: "x".to_owned(),
    });
    let refused = ann.expect(|f| matches!(f, Frame::Error { .. }));
    assert!(matches!(refused, Frame::Error { code, .. } if code == ErrorCode::NO_SUCH_NICK));

    ann.join("Hall");
    bob.join("hall");
    // Ann, on the other node, is told of bob's join; bob of ann's leave.
    let joined = ann.expect(|f| matches!(f, Frame::Joined { .. }));
    assert!(
        matches!(&joined, Frame::Joined { nick, members: 2, .. } if nick == "bob"),
        "{joined:?}"
    );
    bob.send(&Frame::Who {
        room: "HALL".to_owned(),
    });
    let who = bob.expect(|f| matches!(f, Frame::WhoList { .. }));
    assert_eq!(
        who,
        Frame::WhoList {
            room: "Hall".to_owned(),
            nicks: vec!["ann".to_owned(), "bob".to_owned()]
        }
    );
    bob.send(&Frame::ListRooms);
    let rooms = bob.expect(|f| matches!(f, Frame::RoomList { .. }));
    let Frame::RoomList { rooms } = rooms else {
        unreachable!()
    };
    let hall = rooms
        .iter()
        .find(|r| r.name == "Hall")
        .expect("Hall listed");
    assert_eq!(hall.members, 2);
    // A rename reaches room mates on the other node, once.
    assert!(matches!(
        set_nick(&mut ann, "anne"),
        Frame::NickChanged { .. }
    ));
    let renamed = bob.expect(|f| matches!(f, Frame::NickChanged { .. }));
    assert_eq!(
        renamed,
        Frame::NickChanged {
            old: "ann".to_owned(),
            new: "anne".to_owned()
        }
    );
    ann.send(&Frame::Leave {
        room: "hall".to_owned(),
    });
    let left = bob.expect(|f| matches!(f, Frame::Left { .. }));
    assert!(
        matches!(&left, Frame::Left { nick, members: 1, .. } if nick == "anne"),
        "{left:?}"
    );
}

#[test]
fn a_client_resumes_exactly_on_another_node() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut talker = BinClient::named(b.addr, "talker");
    talker.join("news");
    let mut reader = BinClient::named(a.addr, "reader");
    reader.join("news");
    for i in 0..3 {
        say(&mut talker, "news", &format!("seen {i}"));
    }
    let seen = room_messages(&mut reader, 3);
    let last_seen = seen[2].0;
    drop(reader);
    for i in 0..5 {
        say(&mut talker, "news", &format!("missed {i}"));
    }
    room_messages(&mut talker, 8);
    // Back, on the other node.
    let mut reader = eventually(TIMEOUT, "the nick to be free again", || {
        let mut client = BinClient::connect(b.addr);
        matches!(set_nick(&mut client, "reader"), Frame::NickChanged { .. }).then_some(client)
    });
    reader.send(&Frame::Join {
        room: "news".to_owned(),
        since: Some(last_seen),
    });
    let resumed = reader.expect(|f| matches!(f, Frame::Resumed { .. }));
    assert_eq!(
        resumed,
        Frame::Resumed {
            room: "news".to_owned(),
            replayed: 5,
            missed: 0
        }
    );
    let replayed = room_messages(&mut reader, 5);
    let ids: Vec<u64> = replayed.iter().map(|(id, ..)| *id).collect();
    assert_eq!(ids, (last_seen + 1..=last_seen + 5).collect::<Vec<_>>());
    assert_eq!(replayed[4].2, "missed 4");
    say(&mut talker, "news", "live");
    let live = room_messages(&mut reader, 1);
    assert_eq!((live[0].0, live[0].2.as_str()), (last_seen + 6, "live"));

    // An id the room never handed out is refused, and nothing changes.
    let mut stranger = BinClient::connect(a.addr);
    stranger.send(&Frame::Join {
        room: "news".to_owned(),
        since: Some(last_seen + 1_000),
    });
    let refused = stranger.expect(|f| matches!(f, Frame::Error { .. }));
    assert!(matches!(refused, Frame::Error { code, .. } if code == ErrorCode::UNKNOWN_MESSAGE_ID));
    stranger.send(&Frame::GetHistory {
        room: "news".to_owned(),
        before: 0,
        limit: 2,
    });
    let page = stranger.expect(|f| matches!(f, Frame::HistoryPage { .. }));
    assert!(
        matches!(
            page,
            Frame::HistoryPage {
                count: 2,
                more: true,
                ..
            }
        ),
        "{page:?}"
    );
    let texts: Vec<String> = room_messages(&mut stranger, 2)
        .into_iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(texts, ["missed 4", "live"]);
}

/// Starts the built server as a node of `redis` named `name`.
fn node_process(redis: &Redis, name: &str, lease: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--bind", "127.0.0.1:0", "--workers", "1", "--quiet"])
        .args([
            "--redis",
            &redis.url(),
            "--node-name",
            name,
            "--node-lease",
            lease,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let addr = lines
        .find_map(|line| line.ok()?.strip_prefix("listening on ")?.parse().ok())
        .expect("the node prints its address");
    (child, addr)
}

#[test]
fn a_killed_node_loses_its_users_within_its_lease() {
    let redis = Redis::start();
    let (mut doomed, doomed_addr) = node_process(&redis, "doomed", "1s");
    let live = node(&redis, "live");
    let mut ghost = BinClient::named(doomed_addr, "ghost");
    ghost.join("hall");
    let mut witness = BinClient::named(live.addr, "witness");
    witness.join("hall");
    let mut taker = BinClient::connect(live.addr);
    assert!(
        matches!(set_nick(&mut taker, "ghost"), Frame::Error { code, .. } if code == ErrorCode::NICK_TAKEN)
    );
    let killed = Instant::now();
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let left = witness.expect(|f| matches!(f, Frame::Left { .. }));
    assert!(
        matches!(&left, Frame::Left { nick, members: 1, .. } if nick == "ghost"),
        "{left:?}"
    );
    eventually(TIMEOUT, "the dead node's nick to be free", || {
        matches!(set_nick(&mut taker, "ghost"), Frame::NickChanged { .. }).then_some(())
    });
    // The lease is 1 s and it is checked every third of a lease.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        killed.elapsed()
    );
}

#[test]
fn nodes_serve_their_own_clients_while_redis_is_down_and_recover_after() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut a1 = BinClient::named(a.addr, "a1");
    let mut a2 = BinClient::named(a.addr, "a2");
    let mut b1 = BinClient::named(b.addr, "b1");
    for client in [&mut a1, &mut a2, &mut b1] {
        client.join("hall");
    }
    redis.stop();
    a.wait_stat("cluster_redis_up", 0);
    // Echo, the room among this node's members and direct messages between them.
    a1.send(&Frame::Echo {
        payload: bytes::Bytes::from_static(b"ping"),
    });
    a1.expect(|f| matches!(f, Frame::EchoReply { .. }));
    say(&mut a1, "hall", "while down");
    let local = room_messages(&mut a2, 1);
    assert_eq!(
        (local[0].0, local[0].2.as_str()),
        (0, "while down"),
        "id 0: not kept"
    );
    a1.send(&Frame::Direct {
        to: "a2".to_owned(),
        text: "still here".to_owned(),
    });
    a2.expect(|f| matches!(f, Frame::DirectMsg { text, .. } if text == "still here"));
    // What needs the cluster is refused, not left hanging.
    let refused = set_nick(&mut a1, "newname");
    assert!(
        matches!(refused, Frame::Error { code, .. } if code == ErrorCode::UNAVAILABLE),
        "{refused:?}"
    );
    assert!(a.stat("cluster_local_only") >= 1);

    redis.restart();
    // Back within about a second: nicks and memberships are claimed again.
    let started = Instant::now();
    let mut n = 0;
    eventually(TIMEOUT, "cross-node delivery to resume", || {
        n += 1;
        say(&mut a1, "hall", &format!("probe {n}"));
        b1.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let got = b1.try_recv();
        b1.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        matches!(got, Ok(Frame::RoomMsg { id, .. }) if id != 0).then_some(())
    });
    println!(
        "cross-node delivery resumed {:?} after Redis came back",
        started.elapsed()
    );
    // The other node is back as soon (each retries on its own, with backoff up to
    // 500 ms) and a1's nick was claimed again: it is taken, not free.
    let mut c = BinClient::connect(b.addr);
    let answer = eventually(TIMEOUT, "node b to reach Redis again", || {
        let answer = set_nick(&mut c, "a1");
        (!matches!(answer, Frame::Error { code, .. } if code == ErrorCode::UNAVAILABLE))
            .then_some(answer)
    });
    println!(
        "both nodes back {:?} after Redis came back",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(answer, Frame::Error { code, .. } if code == ErrorCode::NICK_TAKEN),
        "{answer:?}"
    );
}

#[test]
fn a_node_without_its_redis_refuses_to_start() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--redis",
            &format!("redis://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--redis", "redis://127.0.0.1:1", "--node-name", "a|b"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--node-name"), "{stderr}");
}

fn chat_frame(client: &mut BinClient) -> Frame {
    client.expect(|f| {
        matches!(
            f,
            Frame::ChatRequested { .. }
                | Frame::ChatStarted { .. }
                | Frame::ChatEnded { .. }
                | Frame::Busy { .. }
                | Frame::ChatMsg { .. }
                | Frame::Error { .. }
        )
    })
}

#[test]
fn private_chats_work_between_users_of_different_nodes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = BinClient::named(a.addr, "ann");
    let mut bob = BinClient::named(b.addr, "bob");
    let mut cat = BinClient::named(b.addr, "cat");
    ann.send(&Frame::ChatRequest {
        peer: "bob".to_owned(),
    });
    assert_eq!(
        chat_frame(&mut bob),
        Frame::ChatRequested {
            from: "ann".to_owned()
        }
    );
    // Bob has a request pending: busy for anyone else, on any node.
    cat.send(&Frame::ChatRequest {
        peer: "bob".to_owned(),
    });
    assert_eq!(
        chat_frame(&mut cat),
        Frame::Busy {
            peer: "bob".to_owned()
        }
    );
    bob.send(&Frame::ChatAccept {
        peer: "ann".to_owned(),
    });
    assert_eq!(
        chat_frame(&mut bob),
        Frame::ChatStarted {
            peer: "ann".to_owned()
        }
    );
    assert_eq!(
        chat_frame(&mut ann),
        Frame::ChatStarted {
            peer: "bob".to_owned()
        }
    );
    ann.send(&Frame::ChatSay {
        text: "hi bob".to_owned(),
    });
    assert_eq!(
        chat_frame(&mut bob),
        Frame::ChatMsg {
            from: "ann".to_owned(),
            text: "hi bob".to_owned()
        }
    );
    bob.send(&Frame::ChatSay {
        text: "hi ann".to_owned(),
    });
    assert_eq!(
        chat_frame(&mut ann),
        Frame::ChatMsg {
            from: "bob".to_owned(),
            text: "hi ann".to_owned()
        }
    );
    // In a chat: busy; and the chat ends for both when one ends it.
    cat.send(&Frame::ChatRequest {
        peer: "ann".to_owned(),
    });
    assert!(matches!(chat_frame(&mut cat), Frame::Busy { .. }));
    ann.send(&Frame::ChatEnd);
    assert!(matches!(chat_frame(&mut ann), Frame::ChatEnded { peer, .. } if peer == "bob"));
    assert!(matches!(chat_frame(&mut bob), Frame::ChatEnded { peer, .. } if peer == "ann"));
    bob.send(&Frame::ChatSay {
        text: "anyone?".to_owned(),
    });
    let refused = chat_frame(&mut bob);
    assert!(
        matches!(refused, Frame::Error { code, .. } if code == ErrorCode::NOT_IN_CHAT),
        "{refused:?}"
    );

    // A new chat across nodes, ended by a disconnect.
    cat.send(&Frame::ChatRequest {
        peer: "ann".to_owned(),
    });
    assert!(matches!(chat_frame(&mut ann), Frame::ChatRequested { from } if from == "cat"));
    ann.send(&Frame::ChatRequest {
        peer: "cat".to_owned(),
    });
    assert!(matches!(chat_frame(&mut ann), Frame::ChatStarted { peer } if peer == "cat"));
    assert!(matches!(chat_frame(&mut cat), Frame::ChatStarted { peer } if peer == "ann"));
    drop(ann);
    let ended = chat_frame(&mut cat);
    assert!(
        matches!(&ended, Frame::ChatEnded { peer, reason } if peer == "ann" && reason.contains("disconnected")),
        "{ended:?}"
    );
}

#[test]
fn nodes_sharing_one_port_share_one_world() {
    let redis = Redis::start();
    let mut first = ClusterConfig::new(redis.url());
    first.node_name = "first".to_owned();
    let a = TestServer::with(|config| {
        config.share_port = true;
        config.cluster = Some(first);
    });
    let mut second = ClusterConfig::new(redis.url());
    second.node_name = "second".to_owned();
    let port = a.addr;
    let b = TestServer::with(|config| {
        config.bind = port;
        config.share_port = true;
        config.cluster = Some(second);
    });
    assert_eq!(a.addr, b.addr);
    // The kernel spreads connections over both nodes (connect until each has some);
    // all meet in one room.
    let mut members = Vec::new();
    while members.len() < 4 || a.stat("connections") == 0 || b.stat("connections") == 0 {
        assert!(
            members.len() < 64,
            "the kernel sent every connection to one node"
        );
        let mut member = BinClient::named(a.addr, &format!("m{}", members.len()));
        member.join("hall");
        members.push(member);
    }
    let (on_a, on_b) = (a.stat("connections"), b.stat("connections"));
    assert_eq!(on_a + on_b, members.len() as u64);
    say(&mut members[0], "hall", "to all");
    for member in &mut members {
        assert_eq!(room_messages(member, 1)[0].2, "to all");
    }
    println!("connections: {on_a} on one node, {on_b} on the other");
}

#[test]
fn a_redis_that_stops_answering_costs_bounded_waits_and_nothing_hangs() {
    let redis = Redis::start();
    let mut cluster = ClusterConfig::new(redis.url());
    cluster.node_name = "a".to_owned();
    cluster.queue = 4;
    let a = TestServer::with(|config| config.cluster = Some(cluster));
    let mut ann = BinClient::named(a.addr, "ann");
    ann.join("hall");
    let pid = nix::unistd::Pid::from_raw(redis.child.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Many requests that need Redis: the queue holds 4, the rest are refused at once.
    let mut clients: Vec<BinClient> = (0..12).map(|_| BinClient::connect(a.addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(&Frame::SetNick {
            nick: format!("n{i}"),
        });
    }
    let started = Instant::now();
    let mut unavailable = 0;
    for client in &mut clients {
        match client.expect(|f| matches!(f, Frame::NickChanged { .. } | Frame::Error { .. })) {
            Frame::Error { code, .. } if code == ErrorCode::UNAVAILABLE => unavailable += 1,
            other => panic!("nothing can be claimed while Redis is paused: {other:?}"),
        }
    }
    assert_eq!(unavailable, 12);
    assert!(
        a.stat("cluster_refused") >= 1,
        "the full queue refused some at once"
    );
    // Echo never waits on Redis.
    let echo = Instant::now();
    ann.send(&Frame::Echo {
        payload: bytes::Bytes::from_static(b"x"),
    });
    ann.expect(|f| matches!(f, Frame::EchoReply { .. }));
    assert!(
        echo.elapsed() < Duration::from_secs(1),
        "echo waited {:?}",
        echo.elapsed()
    );
    println!("12 claims answered 214 within {:?}", started.elapsed());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let mut late = BinClient::connect(a.addr);
    eventually(TIMEOUT, "claims to work again", || {
        matches!(set_nick(&mut late, "back"), Frame::NickChanged { .. }).then_some(())
    });
}

/// Sends one command to `redis` in RESP and returns the first line of the reply.
fn redis_command(redis: &Redis, args: &[&str]) -> String {
    use std::io::{BufRead, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command += &format!("${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(command.as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn a_node_whose_subscription_drops_delivers_what_it_missed_once_and_in_order() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut reader = BinClient::named(a.addr, "reader");
    let mut talker = BinClient::named(b.addr, "talker");
    reader.join("hall");
    talker.join("hall");
    say(&mut talker, "hall", "before");
    assert_eq!(room_messages(&mut reader, 1)[0].2, "before");
    // Every subscription is cut, and none may be made again for a while: what is said
    // meanwhile reaches no node through its channel.
    let refused = redis_command(&redis, &["ACL", "SETUSER", "default", "-subscribe"]);
    assert!(refused.starts_with("+OK"), "{refused}");
    let killed = redis_command(&redis, &["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.starts_with(':'), "{killed}");
    const MISSED: usize = 50;
    for i in 0..MISSED {
        say(&mut talker, "hall", &format!("m{i}"));
    }
    // "before" and the missed ones are kept in the room's log.
    let kept = format!(":{}\r\n", MISSED + 1);
    eventually(TIMEOUT, "the messages to be published", || {
        (redis_command(&redis, &["LLEN", "chat:0:room:hall:log"]) == kept).then_some(())
    });
    let allowed = redis_command(&redis, &["ACL", "SETUSER", "default", "+subscribe"]);
    assert!(allowed.starts_with("+OK"), "{allowed}");
    say(&mut talker, "hall", "after");
    let got = room_messages(&mut reader, MISSED + 1);
    let texts: Vec<&str> = got.iter().map(|(.., text)| text.as_str()).collect();
    let mut want: Vec<String> = (0..MISSED).map(|i| format!("m{i}")).collect();
    want.push("after".to_owned());
    assert_eq!(texts, want, "every message once and in order");
    let ids: Vec<u64> = got.iter().map(|(id, ..)| *id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    // "after" too, when it was said before the subscription was back.
    let recovered = a.stat("cluster_recovered");
    assert!(
        (MISSED as u64..=MISSED as u64 + 1).contains(&recovered),
        "{recovered} read back from the log"
    );
}

#[test]
fn a_joiner_gets_every_message_after_its_last_while_the_room_is_busy() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut talker = BinClient::named(b.addr, "talker");
    talker.join("busy");
    let mut local = BinClient::named(a.addr, "local");
    local.join("busy");
    for round in 0..5 {
        // The room is busy on both nodes while a joiner comes and goes on node a.
        for i in 0..200 {
            say(&mut talker, "busy", &format!("r{round} m{i}"));
        }
        let mut joiner = BinClient::named(a.addr, &format!("joiner{round}"));
        let last = joiner.join("busy");
        for i in 200..400 {
            say(&mut talker, "busy", &format!("r{round} m{i}"));
        }
        say(&mut talker, "busy", &format!("r{round} end"));
        let mut ids = Vec::new();
        loop {
            if let Frame::RoomMsg { id, text, .. } = joiner.recv() {
                ids.push(id);
                if text == format!("r{round} end") {
                    break;
                }
            }
        }
        let want: Vec<u64> = (last + 1..=*ids.last().unwrap()).collect();
        let missing: Vec<u64> = want
            .iter()
            .filter(|id| !ids.contains(id))
            .copied()
            .collect();
        assert!(
            ids == want,
            "round {round}: after {last}, {} ids came for {} expected; missing {:?}",
            ids.len(),
            want.len(),
            &missing[..missing.len().min(5)]
        );
        room_messages(&mut local, 401);
    }
}

#[test]
fn private_chats_work_between_users_of_one_node_in_a_cluster() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let mut bob = BinClient::named(a.addr, "bob");
    let mut cat = BinClient::named(a.addr, "cat");
    bob.send(&Frame::ChatRequest {
        peer: "cat".to_owned(),
    });
    assert!(matches!(chat_frame(&mut cat), Frame::ChatRequested { from } if from == "bob"));
    cat.send(&Frame::ChatAccept {
        peer: "bob".to_owned(),
    });
    assert!(matches!(chat_frame(&mut cat), Frame::ChatStarted { peer } if peer == "bob"));
    assert!(matches!(chat_frame(&mut bob), Frame::ChatStarted { peer } if peer == "cat"));
    // Both sides know their partner.
    bob.send(&Frame::ChatSay {
        text: "hi cat".to_owned(),
    });
    assert!(matches!(chat_frame(&mut cat), Frame::ChatMsg { text, .. } if text == "hi cat"));
    cat.send(&Frame::ChatSay {
        text: "hi bob".to_owned(),
    });
    assert!(matches!(chat_frame(&mut bob), Frame::ChatMsg { text, .. } if text == "hi bob"));
    // Ended by one side: over for both.
    cat.send(&Frame::ChatEnd);
    assert!(matches!(chat_frame(&mut cat), Frame::ChatEnded { .. }));
    assert!(matches!(chat_frame(&mut bob), Frame::ChatEnded { .. }));
    bob.send(&Frame::ChatSay {
        text: "still there?".to_owned(),
    });
    let refused = chat_frame(&mut bob);
    assert!(
        matches!(refused, Frame::Error { code, .. } if code == ErrorCode::NOT_IN_CHAT),
        "{refused:?}"
    );
}

#[test]
fn a_departure_while_redis_stalls_is_released_once_it_answers() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    let ann = BinClient::named(a.addr, "ann");
    let pid = nix::unistd::Pid::from_raw(redis.child.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Ann leaves while Redis does not answer: past the 2 s a reply may take, node a
    // gives up on it for now.
    drop(ann);
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let mut taker = BinClient::connect(b.addr);
    eventually(TIMEOUT, "ann's nick to be released", || {
        matches!(set_nick(&mut taker, "ann"), Frame::NickChanged { .. }).then_some(())
    });
}

#[test]
fn chats_after_redis_lost_its_data_get_numbers_never_seen_before() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = BinClient::named(a.addr, "ann");
    let mut bob = BinClient::named(b.addr, "bob");
    let chat = |ann: &mut BinClient, bob: &mut BinClient| {
        ann.send(&Frame::ChatRequest {
            peer: "bob".to_owned(),
        });
        assert!(matches!(chat_frame(bob), Frame::ChatRequested { .. }));
        bob.send(&Frame::ChatAccept {
            peer: "ann".to_owned(),
        });
        assert!(matches!(chat_frame(bob), Frame::ChatStarted { .. }));
        assert!(matches!(chat_frame(ann), Frame::ChatStarted { .. }));
        ann.send(&Frame::ChatSay {
            text: "hello".to_owned(),
        });
        assert!(matches!(chat_frame(bob), Frame::ChatMsg { .. }));
        ann.send(&Frame::ChatEnd);
        assert!(matches!(chat_frame(ann), Frame::ChatEnded { .. }));
        assert!(matches!(chat_frame(bob), Frame::ChatEnded { .. }));
    };
    chat(&mut ann, &mut bob);
    // Redis restarts empty: the chat counter is gone, but the clients remember the
    // number of the chat that ended.
    redis.stop();
    a.wait_stat("cluster_redis_up", 0);
    redis.restart();
    // Back once a direct message crosses again.
    eventually(TIMEOUT, "both nodes to be back", || {
        ann.send(&Frame::Direct {
            to: "bob".to_owned(),
            text: "there?".to_owned(),
        });
        bob.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut crossed = false;
        while let Ok(frame) = bob.try_recv() {
            crossed |= matches!(frame, Frame::DirectMsg { .. });
        }
        bob.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        crossed.then_some(())
    });
    // What the probes got meanwhile (refusals while Redis was coming back).
    ann.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while ann.try_recv().is_ok() {}
    ann.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    chat(&mut ann, &mut bob);
}

#[test]
fn a_node_forgets_the_rooms_its_users_have_left() {
    const ROOMS: usize = 10;
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = BinClient::named(a.addr, "ann");
    let mut carl = BinClient::named(b.addr, "carl");
    for i in 0..ROOMS {
        ann.join(&format!("room{i}"));
        carl.join(&format!("room{i}"));
    }
    for i in 0..ROOMS {
        say(&mut carl, &format!("room{i}"), "before");
    }
    assert_eq!(room_messages(&mut ann, ROOMS).len(), ROOMS);
    assert_eq!(a.stat("cluster_rooms_followed"), ROOMS as u64);

    // Ann leaves all but the last while carl keeps talking in them: messages still on
    // their way when she leaves must not bring a room back.
    for i in 0..ROOMS - 1 {
        ann.send(&Frame::Leave {
            room: format!("room{i}"),
        });
        say(&mut carl, &format!("room{i}"), "during");
    }
    for i in 0..ROOMS - 1 {
        say(&mut carl, &format!("room{i}"), "after");
    }
    say(&mut carl, &format!("room{}", ROOMS - 1), "still here");
    // Carl is in every room: once he has all he said, all of it has been published.
    let said = room_messages(&mut carl, ROOMS + 2 * (ROOMS - 1) + 1);
    assert!(said.iter().any(|(_, _, text)| text == "still here"));
    eventually(TIMEOUT, "the left rooms to be forgotten", || {
        (a.stat("cluster_rooms_followed") == 1).then_some(())
    });
    // The one room still joined still delivers.
    let got = room_messages(&mut ann, 1).pop().expect("one");
    assert!(got.2 == "still here" || got.2 == "during", "{got:?}");

    drop(ann);
    eventually(TIMEOUT, "the last room to be forgotten", || {
        (a.stat("cluster_rooms_followed") == 0).then_some(())
    });
}
