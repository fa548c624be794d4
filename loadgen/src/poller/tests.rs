use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::*;

/// A connecting socket is reported writable under the token it was registered with.
#[test]
fn a_socket_event_carries_its_token() {
    tokens_are_reported(Poller::new(16).expect("poller"));
}

/// The same through the millisecond fallback taken where `epoll_pwait2` is missing or
/// refused.
#[cfg(target_os = "linux")]
#[test]
fn the_millisecond_fallback_reports_tokens_too() {
    let mut poller = Poller::new(16).expect("poller");
    poller.exact = false;
    tokens_are_reported(poller);
}

/// Only a missing or refused `epoll_pwait2` switches to the fallback; other failures
/// are errors.
#[cfg(target_os = "linux")]
#[test]
fn missing_or_refused_epoll_pwait2_means_the_fallback() {
    use rustix::io::Errno;
    assert!(Poller::unavailable(Errno::NOSYS));
    assert!(Poller::unavailable(Errno::PERM));
    assert!(!Poller::unavailable(Errno::BADF));
    assert!(!Poller::unavailable(Errno::INVAL));
}

/// Sleeps of a millisecond or more end early by more than the kernel's proportional
/// slack (0.5 % at most), so they never end late; short ones are asked for whole.
#[cfg(target_os = "linux")]
#[test]
fn long_sleeps_are_asked_for_early_by_the_kernels_slack() {
    assert_eq!(early(0), 0);
    assert_eq!(early(999_999), 999_999);
    assert_eq!(early(1_000_000), 995_000);
    assert_eq!(early(50_000_000), 49_750_000);
    for t in [1_000_000_u64, 7_777_777, 50_000_000, u64::MAX] {
        assert!(early(t) + t / 200 <= t && early(t) < t);
    }
}

fn tokens_are_reported(mut poller: Poller) {
    let mut listener =
        TcpListener::bind("127.0.0.1:0".parse().expect("address")).expect("bind listener");
    let addr = listener.local_addr().expect("listener address");
    poller
        .registry()
        .register(&mut listener, Token(3), Interest::READABLE)
        .expect("register listener");
    let mut stream = TcpStream::connect(addr).expect("connect");
    poller
        .registry()
        .register(&mut stream, Token(7), Interest::WRITABLE)
        .expect("register stream");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut client_writable, mut listener_readable) = (false, false);
    while !(client_writable && listener_readable) && Instant::now() < deadline {
        poller.wait(1_000_000_000).expect("wait");
        for r in poller.ready() {
            match r.token {
                Token(7) => client_writable |= r.writable && !r.error,
                Token(3) => listener_readable |= r.readable,
                other => panic!("unexpected token {other:?}"),
            }
        }
    }
    assert!(
        client_writable,
        "the connected socket was reported writable"
    );
    assert!(listener_readable, "the listener was reported readable");
}

/// A peer's FIN is read-closed, and the socket is still readable (to see the EOF).
#[test]
fn a_peer_close_is_read_closed() {
    let listener =
        TcpListener::bind("127.0.0.1:0".parse().expect("address")).expect("bind listener");
    let addr = listener.local_addr().expect("listener address");
    let mut poller = Poller::new(16).expect("poller");
    let mut stream = TcpStream::connect(addr).expect("connect");
    poller
        .registry()
        .register(&mut stream, Token(5), Interest::READABLE)
        .expect("register stream");
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepted = loop {
        match listener.accept() {
            Ok((peer, _)) => break peer,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                poller.wait(1_000_000).expect("wait");
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    drop(accepted);
    let mut closed = None;
    while closed.is_none() && Instant::now() < deadline {
        poller.wait(1_000_000_000).expect("wait");
        closed = poller.ready().iter().find(|r| r.read_closed).copied();
    }
    let closed = closed.expect("the peer's close was reported");
    assert_eq!(closed.token, Token(5));
    assert!(closed.readable);
}

#[cfg(target_os = "linux")]
mod epoll_flags {
    use rustix::event::epoll::EventFlags as F;

    use super::*;

    fn map(flags: F) -> Readiness {
        Readiness::from_epoll(flags, 42)
    }

    #[test]
    fn data_is_the_token() {
        assert_eq!(map(F::IN).token, Token(42));
        assert_eq!(
            Readiness::from_epoll(F::OUT, usize::MAX as u64).token,
            Token(usize::MAX)
        );
    }

    #[test]
    fn readable_and_writable() {
        let r = map(F::IN);
        assert!(r.readable && !r.writable && !r.read_closed && !r.write_closed && !r.error);
        assert!(map(F::PRI).readable);
        let w = map(F::OUT);
        assert!(w.writable && !w.readable && !w.read_closed && !w.write_closed && !w.error);
    }

    #[test]
    fn rdhup_closes_reading_only_with_in() {
        assert!(map(F::IN | F::RDHUP).read_closed);
        assert!(!map(F::RDHUP).read_closed);
        assert!(!map(F::IN | F::RDHUP).write_closed);
    }

    #[test]
    fn hup_closes_both_halves() {
        let r = map(F::HUP);
        assert!(r.read_closed && r.write_closed && !r.readable && !r.error);
    }

    #[test]
    fn errors() {
        let e = map(F::ERR);
        assert!(e.error && e.write_closed && !e.read_closed);
        let e = map(F::OUT | F::ERR);
        assert!(e.error && e.write_closed && e.writable);
        let e = map(F::IN | F::ERR);
        assert!(e.error && !e.write_closed && e.readable);
    }
}
