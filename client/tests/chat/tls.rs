//! `chat --tls` against the real server serving TLS, with a self-signed certificate
//! made by the `openssl` command the README shows.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Chat, TestServer};

/// `cert.pem` and `key.pem` in a fresh directory, made by the README's command.
fn openssl_certificate(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("chat-client-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-days", "30", "-nodes", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn tls_server(cert: &Path, key: &Path) -> TestServer {
    TestServer::with(|config| {
        config.tls = Some(server::TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
        });
    })
}

#[test]
fn two_clients_chat_and_echo_over_tls_with_a_private_ca() {
    let (cert, key) = openssl_certificate("chat");
    let server = tls_server(&cert, &key);
    let ca = cert.display().to_string();
    let mut alice = Chat::spawn(
        "alice",
        server.addr,
        &["--tls", "--ca", &ca, "--nick", "alice"],
    );
    alice.expect("[lobby] * alice joined");
    // By name, as a person would type it.
    let addr = format!("localhost:{}", server.addr.port());
    let mut bob = Chat::spawn_at("bob", &addr, &["--tls", "--ca", &ca, "--nick", "bob"]);
    bob.expect("[lobby] * bob joined");
    alice.send("hello over TLS");
    bob.expect("[lobby] <alice> hello over TLS");
    bob.send("/echo ping");
    bob.expect("ping");
    for chat in [alice, bob] {
        let mut chat = chat;
        chat.close_stdin();
        let (status, _, stderr) = chat.finish();
        assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    }
}

#[test]
fn a_certificate_the_client_does_not_trust_fails_the_handshake() {
    let (cert, key) = openssl_certificate("untrusted");
    let server = tls_server(&cert, &key);
    // Verified against the system's roots, which never signed a self-signed certificate;
    // a system without roots fails before connecting. Either way: no session.
    let mut chat = Chat::spawn("untrusted", server.addr, &["--tls"]);
    chat.close_stdin();
    let (status, _, stderr) = chat.finish();
    assert_ne!(status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("certificate") || stderr.contains("root"),
        "{stderr}"
    );
}

#[test]
fn a_plaintext_chat_on_a_tls_port_is_told_why() {
    let (cert, key) = openssl_certificate("plaintext");
    let server = tls_server(&cert, &key);
    let mut chat = Chat::spawn("plain", server.addr, &[]);
    chat.close_stdin();
    let (status, _, stderr) = chat.finish();
    assert_ne!(status.code(), Some(0));
    assert!(stderr.contains("this port speaks TLS"), "{stderr}");
}
