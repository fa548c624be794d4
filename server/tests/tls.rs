//! TLS on the chat port, end to end: binary and text sessions through rustls and
//! through Python's `ssl` module, plaintext clients, stalled handshakes, garbage and
//! cut-off records, and certificate reloads (in-process and by SIGHUP to the binary).
//! Certificates are made by `rcgen` at test time.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{TIMEOUT, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use server::TlsFiles;
use shared::{ErrorCode, Frame, FrameDecoder, PROTOCOL_VERSION};

/// A CA and a certificate for `localhost` and `127.0.0.1` it signed, as PEM files.
struct TestPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestPki {
    /// Makes a fresh CA and server certificate under a new directory named after `name`.
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chat-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        pki.issue(name);
        pki
    }

    /// Writes a new CA, certificate and key over the files.
    fn issue(&self, name: &str) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        // Written beside and renamed, so a reload never reads half a file.
        for (path, pem) in [
            (&self.ca, ca_cert.pem()),
            (&self.cert, cert.pem()),
            (&self.key, key.serialize_pem()),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, pem).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// A client configuration that trusts this CA only (as it is now).
    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

fn tls_server(pki: &TestPki, adjust: impl FnOnce(&mut server::Config)) -> TestServer {
    TestServer::with(|config| {
        config.tls = Some(pki.files());
        adjust(config);
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (or says why it failed).
fn try_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Tls, std::io::Error> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    try_connect(addr, config).expect("TLS handshake")
}

/// A binary client over TLS.
struct TlsBin {
    tls: Tls,
    decoder: FrameDecoder,
}

impl TlsBin {
    fn hello(addr: SocketAddr, config: &Arc<ClientConfig>) -> (Self, String) {
        let mut client = Self {
            tls: connect(addr, config),
            decoder: FrameDecoder::new(usize::MAX >> 1),
        };
        client.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
        });
        match client.recv() {
            Frame::Welcome { nick, .. } => (client, nick),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    fn send(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).unwrap();
        self.tls.write_all(&buf).unwrap();
        self.tls.flush().unwrap();
    }

    fn try_recv(&mut self) -> Result<Frame, String> {
        let mut buf = [0u8; 16 << 10];
        loop {
            match self.decoder.decode() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(format!("decode error: {e}")),
            }
            match self.tls.read(&mut buf) {
                Ok(0) => return Err("eof".to_owned()),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    fn recv(&mut self) -> Frame {
        self.try_recv().unwrap_or_else(|e| panic!("recv: {e}"))
    }

    fn expect(&mut self, want: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            let frame = self.recv();
            if want(&frame) {
                return frame;
            }
        }
    }

    fn echo(&mut self, payload: &[u8]) {
        self.send(&Frame::Echo {
            payload: bytes::Bytes::copy_from_slice(payload),
        });
        let reply = self.expect(|f| matches!(f, Frame::EchoReply { .. }));
        assert!(
            matches!(&reply, Frame::EchoReply { payload: p, .. } if p[..] == *payload),
            "{reply:?}"
        );
    }
}

/// Reads one line (without its newline) from a TLS stream.
fn read_line(tls: &mut Tls) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tls.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) if byte[0] == b'\n' => return Some(String::from_utf8(line).unwrap()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("read line: {e}"),
        }
    }
}

/// Everything the peer sends until it closes (EOF or reset).
fn read_to_close(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("expected the server to close, got {e}"),
        }
    }
}

/// The first bytes a real client sends: its ClientHello record.
fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

fn raw(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock
}

#[test]
fn a_binary_session_over_tls_chats_echoes_and_says_goodbye() {
    let pki = TestPki::new("binary");
    let server = tls_server(&pki, |_| {});
    let config = pki.client();
    let (mut alice, alice_nick) = TlsBin::hello(server.addr, &config);
    let (mut bob, _) = TlsBin::hello(server.addr, &config);
    for client in [&mut alice, &mut bob] {
        client.send(&Frame::Join {
            room: "tls".to_owned(),
            since: None,
        });
        client.expect(|f| matches!(f, Frame::Joined { room, .. } if room == "tls"));
    }
    alice.send(&Frame::Say {
        room: "tls".to_owned(),
        text: "over TLS".to_owned(),
    });
    for client in [&mut alice, &mut bob] {
        let msg = client.expect(|f| matches!(f, Frame::RoomMsg { .. }));
        assert!(
            matches!(&msg, Frame::RoomMsg { from, text, .. } if *from == alice_nick && text == "over TLS"),
            "{msg:?}"
        );
    }
    // A payload larger than one TLS record (16 KiB) crosses several.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    bob.echo(&big);
    bob.echo(b"small");
    alice.send(&Frame::Goodbye {
        reason: "bye".to_owned(),
    });
    // Whatever was still on its way (bob's join notice), then the close.
    let end = loop {
        if let Err(end) = alice.try_recv() {
            break end;
        }
    };
    assert_eq!(end, "eof", "closed after goodbye");
    server.wait_stat("closed_goodbye", 1);
    assert_eq!(server.stat("closed_tls_error"), 0);
}

#[test]
fn a_text_session_over_tls_is_greeted_after_the_handshake_and_echoes() {
    let pki = TestPki::new("text");
    let server = tls_server(&pki, |_| {});
    let config = pki.client();
    // Silent after the handshake: greeted as a person, in text, after --greet-after.
    let mut silent = connect(server.addr, &config);
    let welcome = read_line(&mut silent).unwrap();
    assert!(welcome.starts_with("* welcome, you are "), "{welcome:?}");
    // Speaks at once: its first decrypted byte chooses text.
    let mut talker = connect(server.addr, &config);
    talker.write_all(b"/echo through TLS\n").unwrap();
    talker.flush().unwrap();
    let mut lines = Vec::new();
    let echo = loop {
        let line = read_line(&mut talker).unwrap();
        if line.ends_with(":through TLS") {
            break line;
        }
        lines.push(line);
    };
    assert!(lines[0].starts_with("* welcome, you are "), "{lines:?}");
    let (time, _) = echo.split_once(':').unwrap();
    assert!(time.parse::<f64>().is_ok(), "{echo:?}");
    talker.write_all(b"/quit\n").unwrap();
    talker.flush().unwrap();
    while read_line(&mut talker).is_some() {}
    server.wait_stat("closed_goodbye", 1);
}

#[test]
fn python_ssl_speaks_text_and_binary_over_tls() {
    let pki = TestPki::new("python");
    let server = tls_server(&pki, |_| {});
    let script = r#"
import socket, ssl, struct, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

def connect():
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")

def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise SystemExit("eof after %r" % out)
        out += chunk
    return out

def frame(s):
    (length,) = struct.unpack(">I", read_exact(s, 4))
    return read_exact(s, length)

with connect() as s:
    s.sendall(b"/echo from python\n")
    f = s.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("eof before the echo")
        if line.endswith(b":from python\n"):
            break
    s.sendall(b"/quit\n")
    print("text", s.version())

with connect() as s:
    s.sendall(bytes.fromhex("00000003010002"))  # Hello, protocol version 2
    welcome = frame(s)
    assert welcome[0] == 0x40, welcome
    payload = b"binary from python"
    s.sendall(struct.pack(">I", 1 + len(payload)) + b"\x0b" + payload)
    while True:
        body = frame(s)
        if body[0] == 0x4d:
            assert body[9:] == payload, body
            break
    s.sendall(bytes.fromhex("0000000422627965"))
    print("binary", s.version())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(&pki.ca)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("text TLSv1.3"), "{stdout}");
    assert!(stdout.contains("binary TLSv1.3"), "{stdout}");
    server.wait_stat("closed_goodbye", 2);
}

#[test]
fn a_plaintext_client_on_the_tls_port_is_told_in_its_framing_and_closed() {
    let pki = TestPki::new("plaintext");
    let server = tls_server(&pki, |_| {});
    let mut text = raw(server.addr);
    text.write_all(b"/nick plain\n").unwrap();
    let got = String::from_utf8(read_to_close(&mut text)).unwrap();
    assert_eq!(got, "ERR 100 this port speaks TLS; connect with TLS\n");

    let mut binary = raw(server.addr);
    binary.write_all(&[0, 0, 0, 3, 1, 0, 1]).unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.feed(&read_to_close(&mut binary));
    let frame = decoder.decode().unwrap();
    assert!(
        matches!(frame, Some(Frame::Error { code, .. }) if code == ErrorCode::MALFORMED),
        "{frame:?}"
    );
    server.wait_stat("closed_not_tls", 2);
    assert_eq!(server.stat("connections"), 0);
}

#[test]
fn a_handshake_that_stalls_is_closed_after_the_timeout() {
    let pki = TestPki::new("stall");
    let server = tls_server(&pki, |c| c.tls_handshake_timeout = Duration::from_secs(1));
    let started = Instant::now();
    // One says nothing; one stops in the middle of its ClientHello.
    let mut silent = raw(server.addr);
    let mut halfway = raw(server.addr);
    let hello = client_hello(&pki.client());
    halfway.write_all(&hello[..hello.len() / 2]).unwrap();
    assert_eq!(
        read_to_close(&mut silent),
        b"",
        "no greeting before a handshake"
    );
    read_to_close(&mut halfway);
    // Housekeeping runs once a second: closed between 1 and about 2 s.
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.wait_stat("closed_tls_handshake_timeout", 2);
    // A client that completes its handshake in time is not affected.
    let (mut ok, _) = TlsBin::hello(server.addr, &pki.client());
    std::thread::sleep(Duration::from_millis(2500));
    ok.echo(b"still here");
    assert_eq!(server.stat("closed_tls_handshake_timeout"), 2);
}

#[test]
fn garbage_and_cut_off_records_close_with_a_tls_error() {
    let pki = TestPki::new("garbage");
    let server = tls_server(&pki, |_| {});
    let config = pki.client();
    // A malformed ClientHello: rustls answers with an alert, then the close.
    let mut malformed = raw(server.addr);
    malformed
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        .unwrap();
    let answer = read_to_close(&mut malformed);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    server.wait_stat("closed_tls_error", 1);

    // Garbage behind a handshake record's first byte (a handshake message claiming
    // 16 MiB): closed, without an alert from rustls.
    let mut garbage = raw(server.addr);
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    read_to_close(&mut garbage);
    server.wait_stat("closed_tls_error", 2);

    // A ClientHello cut off by the client's FIN.
    let mut cut = raw(server.addr);
    let hello = client_hello(&config);
    cut.write_all(&hello[..hello.len() / 3]).unwrap();
    cut.shutdown(Shutdown::Write).unwrap();
    read_to_close(&mut cut);
    server.wait_stat("closed_tls_error", 3);

    // After a good handshake and a Welcome, a record that fails authentication.
    let (mut session, _) = TlsBin::hello(server.addr, &config);
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0xaa; 32]);
    session.tls.sock.write_all(&forged).unwrap();
    assert!(session.try_recv().is_err(), "the server closes the session");
    server.wait_stat("closed_tls_error", 4);
    assert_eq!(server.stat("connections"), 0);
}

#[test]
fn a_reload_changes_the_certificate_of_new_sessions_only_and_a_bad_one_changes_nothing() {
    let pki = TestPki::new("reload");
    let old = pki.client();
    let server = tls_server(&pki, |_| {});
    let (mut before, _) = TlsBin::hello(server.addr, &old);

    std::fs::write(&pki.cert, "not a certificate").unwrap();
    let err = server
        .handle
        .reload_tls()
        .expect_err("a bad file is refused");
    assert!(err.to_string().contains("cert.pem"), "{err}");
    let (mut still_old, _) = TlsBin::hello(server.addr, &old);
    still_old.echo(b"old certificate");

    pki.issue("reloaded");
    let new = pki.client();
    server.handle.reload_tls().expect("reload");
    let (mut after, _) = TlsBin::hello(server.addr, &new);
    after.echo(b"new certificate");
    assert!(
        try_connect(server.addr, &old).is_err(),
        "new handshakes no longer use the old certificate"
    );
    before.echo(b"the session from before goes on");
    still_old.echo(b"and so does this one");
}

#[test]
fn sighup_reloads_the_certificate_of_the_server_binary_without_dropping_sessions() {
    let pki = TestPki::new("sighup");
    let old = pki.client();
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--log-interval",
            "0",
        ])
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());

    let (mut before, _) = TlsBin::hello(addr, &old);
    before.echo(b"before the reload");
    pki.issue("after-sighup");
    let new = pki.client();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The reload happens on the server's signal thread: new sessions see the new
    // certificate once it has.
    let deadline = Instant::now() + TIMEOUT;
    let mut after = loop {
        if let Ok(tls) = try_connect(addr, &new) {
            break tls;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    after.write_all(b"/echo after the reload\n").unwrap();
    after.flush().unwrap();
    while !read_line(&mut after)
        .unwrap()
        .ends_with(":after the reload")
    {}
    assert!(
        try_connect(addr, &old).is_err(),
        "the old certificate is gone"
    );
    before.echo(b"the session from before goes on");

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful exit after SIGTERM");
}

/// A server started without TLS has nothing to reload, and says so.
#[test]
fn a_server_without_tls_refuses_a_reload() {
    let server = TestServer::start();
    let err = server.handle.reload_tls().expect_err("no TLS to reload");
    assert_eq!(err.to_string(), "the server serves no TLS");
}

#[test]
fn a_missing_certificate_stops_the_server_from_starting() {
    let dir = std::env::temp_dir().join(format!("chat-tls-missing-{}", std::process::id()));
    let config = server::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsFiles {
            cert: dir.join("nope.pem"),
            key: dir.join("nope.key"),
        }),
        ..server::Config::default()
    };
    let err = server::Server::bind(config).expect_err("no certificate, no server");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    assert!(!Path::new(&dir).join("nope.pem").exists());
}

#[test]
fn a_full_tls_server_refuses_a_newcomer_inside_tls_and_closes_a_silent_one() {
    let pki = TestPki::new("full");
    let server = tls_server(&pki, |c| c.max_connections = 1);
    let config = pki.client();
    let (mut first, _) = TlsBin::hello(server.addr, &config);

    // Past its handshake, in binary: told in its framing, encrypted.
    let mut newcomer = TlsBin {
        tls: connect(server.addr, &config),
        decoder: FrameDecoder::new(1 << 20),
    };
    newcomer.send(&Frame::Hello {
        version: PROTOCOL_VERSION,
    });
    let refusal = newcomer.recv();
    assert!(
        matches!(refusal, Frame::Error { code, .. } if code == ErrorCode::SERVER_FULL),
        "{refusal:?}"
    );
    assert!(newcomer.try_recv().is_err(), "then closed");

    // No handshake at all: closed without a word once the grace has passed.
    let mut silent = raw(server.addr);
    assert_eq!(read_to_close(&mut silent), b"");
    server.wait_stat("closed_server_full", 2);
    first.echo(b"the one admitted is served");
}

/// A TLS 1.2 client that asks to renegotiate (OpenSSL's `s_client`, whose `R` command
/// sends a second ClientHello inside the session; rustls clients cannot) is refused:
/// rustls answers `no_renegotiation`, the client gives up, and the session ends as a TLS
/// error, never a panic or a connection left open. A TLS 1.3 client cannot renegotiate
/// at all; the nearest it can send is a ClientHello after the handshake, in the clear,
/// which is a TLS error as well.
#[test]
fn a_client_that_tries_to_renegotiate_is_closed_with_a_tls_error() {
    let pki = TestPki::new("renegotiate");
    let server = tls_server(&pki, |_| {});
    let config = pki.client();

    // TLS 1.3: a full handshake, then a plaintext ClientHello record on the socket.
    let (mut session, _) = TlsBin::hello(server.addr, &config);
    session.tls.sock.write_all(&client_hello(&config)).unwrap();
    assert!(session.try_recv().is_err(), "the server closes the session");
    server.wait_stat("closed_tls_error", 1);

    // TLS 1.2 renegotiation, asked for once the text greeting shows the session is up.
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-tls1_2",
            "-servername",
            "localhost",
            "-connect",
        ])
        .arg(server.addr.to_string())
        .arg("-CAfile")
        .arg(&pki.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "s_client ended before the greeting"
        );
        if line.starts_with("* welcome, you are ") {
            break;
        }
    }
    stdin.write_all(b"R\n").unwrap();
    stdin.flush().unwrap();
    // stdin stays open (its end would make s_client leave by itself): s_client has to
    // end because of the renegotiation.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert!(
        started.elapsed() < TIMEOUT,
        "s_client took {:?}",
        started.elapsed()
    );
    // OpenSSL reports the server's `no_renegotiation` alert by that name and gives up.
    assert!(stderr.contains("RENEGOTIATING"), "{stderr}\n{rest}");
    assert!(stderr.contains("no renegotiation"), "{stderr}\n{rest}");
    assert!(!status.success(), "{status}: {stderr}");
    server.wait_stat("closed_tls_error", 2);
    server.wait_stat("connections", 0);

    // The server still serves new sessions.
    let (mut after, _) = TlsBin::hello(server.addr, &config);
    after.tls.conn.send_close_notify();
    let _ = after.tls.flush();
}
