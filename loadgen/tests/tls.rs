//! Against the real chat server serving TLS (a certificate made by `rcgen` at test
//! time): loadgen's echo and room scenarios run clean with `--tls --ca` and with
//! `--tls --tls-insecure`, a certificate from a CA it does not trust is refused, and the
//! clock-offset probe speaks TLS.

use std::path::{Path, PathBuf};

use loadgen::{Config, Protocol, Scenario, TlsClient};
use rcgen::{CertificateParams, DnType, KeyPair};
use shared::tls::{Trust, client_config, server_name};

use crate::common::{out_dir, quick_config, run, run_loadgen};

/// A self-signed certificate for `localhost` and `127.0.0.1` (it is its own CA), as
/// `cert.pem` and `key.pem` in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("names");
    params
        .distinguished_name
        .push(DnType::CommonName, "loadgen test");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

fn tls_server(cert: &Path, key: &Path) -> server::Running {
    let config = server::Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        tls: Some(server::TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        ..server::Config::default()
    };
    server::Server::bind(config).expect("bind server").spawn()
}

fn stat(server: &server::Running, name: &str) -> u64 {
    server
        .handle()
        .stats()
        .into_iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| v)
}

#[test]
fn the_binary_runs_echo_over_tls_with_a_private_ca_and_insecurely() {
    let out = out_dir("tls-cli");
    let (cert, key) = self_signed(&out);
    let server = tls_server(&cert, &key);
    let addr = server.local_addr().to_string();
    let results = out.display().to_string();
    let ca = cert.display().to_string();
    for trust in [&["--ca", ca.as_str()][..], &["--tls-insecure"][..]] {
        let mut args = vec![
            "--addr",
            &addr,
            "--tls",
            "--clients",
            "4",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--out",
            &results,
            "--quiet",
            "--max-loss",
            "0",
        ];
        args.extend_from_slice(trust);
        let run = run_loadgen(&args);
        assert_eq!(
            run.code,
            Some(0),
            "{trust:?}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(run.stdout.contains("echo-binary-tls"), "{}", run.stdout);
    }
    assert_eq!(stat(&server, "closed_not_tls"), 0);
    assert_eq!(stat(&server, "closed_tls_error"), 0);
    assert!(stat(&server, "connections_total") >= 8);
}

#[test]
fn a_room_over_tls_gets_every_message_once() {
    let out = out_dir("tls-room");
    let (cert, key) = self_signed(&out);
    let server = tls_server(&cert, &key);
    for protocol in [Protocol::Binary, Protocol::Text] {
        let config = Config {
            scenario: Scenario::Room,
            room_size: 3,
            protocol,
            tls: Some(TlsClient {
                config: client_config(&Trust::Ca(cert.clone())).expect("client config"),
                name: server_name("localhost:0").expect("name"),
            }),
            ..quick_config(server.local_addr(), 6, 20.0, 2, &out)
        };
        let report = run(&config);
        let s = &report.summary;
        assert_eq!(s.connected, 6, "{:?}", report.warnings);
        assert_eq!(s.errors, 0, "{:?}", report.warnings);
        assert_eq!(
            (s.lost, s.duplicated, s.reordered, s.corrupted),
            (0, 0, 0, 0)
        );
        assert!(s.received > 0 && s.received == s.expected, "{s:?}");
    }
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused() {
    let out = out_dir("tls-refused");
    let (cert, key) = self_signed(&out);
    let server = tls_server(&cert, &key);
    // The client trusts another self-signed certificate only.
    let other_dir = out.join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let (other_ca, _) = self_signed(&other_dir);
    let config = Config {
        tls: Some(TlsClient {
            config: client_config(&Trust::Ca(other_ca)).expect("client config"),
            name: server_name("127.0.0.1:0").expect("name"),
        }),
        ..quick_config(server.local_addr(), 2, 10.0, 1, &out)
    };
    let err = loadgen::run(&config, &loadgen::StopSignal::new()).expect_err("nobody connects");
    let text = format!("{err:?}");
    assert!(text.contains("invalid peer certificate"), "{text}");
}

/// Before a `--start-at` run the clock-offset probe speaks TLS like the clients, and
/// measures a small bound on loopback.
#[test]
fn the_clock_offset_is_measured_over_tls() {
    let out = out_dir("tls-clock-offset");
    let (cert, key) = self_signed(&out);
    let server = tls_server(&cert, &key);
    let config = Config {
        tls: Some(TlsClient {
            config: client_config(&Trust::Ca(cert.clone())).expect("client config"),
            name: server_name("localhost:0").expect("name"),
        }),
        start_at: Some(std::time::SystemTime::now() + std::time::Duration::from_millis(1500)),
        ..quick_config(server.local_addr(), 2, 10.0, 1, &out)
    };
    let report = run(&config);
    let s = &report.summary;
    let bound = s.clock_offset_bound_us.expect("measured over TLS");
    assert!(bound < 5_000, "bound {bound} us");
    assert!(s.clock_offset_us.is_some());
    // Other warnings (loadgen behind its own schedule on a busy machine) are not this
    // test's business; the probe's own would be.
    assert!(
        !report.warnings.iter().any(|w| w.contains("clock offset")),
        "{:?}",
        report.warnings
    );
}
