//! TLS for the clients (the load generator and the terminal client): which server
//! certificates they trust, turned into a rustls [`ClientConfig`], and the name a
//! certificate must carry. The server's side is in the `server` crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use rustls;

/// Which server certificates a client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates that chain to the system's trusted roots.
    System,
    /// Certificates that chain to the CA certificates in this PEM file (a private CA).
    Ca(PathBuf),
    /// Any certificate, unverified: for benchmarks against self-signed certificates
    /// only. The handshake's signatures are still checked, so the connection is
    /// encrypted, but anyone in the middle could pose as the server.
    Insecure,
}

/// Why a client TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The CA file cannot be read or is not PEM. Point `--ca` at a PEM file.
    #[error("cannot read CA certificates from {}: {source}", path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file holds no certificate rustls accepts as a root.
    #[error("no usable CA certificate in {}", path.display())]
    NoCa {
        /// The file.
        path: PathBuf,
    },
    /// The system has no trusted roots that could be loaded. Install the CA
    /// certificates package, or give `--ca`.
    #[error("no trusted root certificates found on this system{detail}")]
    NoSystemRoots {
        /// What the loader reported, if anything.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The host of the server address cannot be a certificate name.
    #[error("{host:?} is not a host name or IP address a certificate can carry")]
    BadName {
        /// The host.
        host: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that accepts the server certificates `trust` says.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::Ca(path) => builder
            .with_root_certificates(ca_roots(path)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn ca_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let error = |source| TrustError::ReadCa {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TrustError::NoCa {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TrustError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(TrustError::NoSystemRoots { detail });
    }
    Ok(roots)
}

/// The name the server's certificate must carry: the host of `HOST:PORT`,
/// `[IPv6]:PORT` or `IP:PORT` (a DNS name or an IP address).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TrustError> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned()).map_err(|_| TrustError::BadName {
        host: host.to_owned(),
    })
}

/// [`Trust::Insecure`]: every certificate passes; the handshake signatures are still
/// verified with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        let name = |addr| server_name(addr).map(|n| n.to_str().into_owned());
        assert_eq!(name("localhost:7878").unwrap(), "localhost");
        assert_eq!(name("127.0.0.1:7878").unwrap(), "127.0.0.1");
        assert_eq!(name("[::1]:7878").unwrap(), "::1");
        assert_eq!(name("chat.example").unwrap(), "chat.example");
        assert!(matches!(
            server_name("bad host:1"),
            Err(TrustError::BadName { .. })
        ));
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let err = client_config(&Trust::Ca("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn the_insecure_configuration_builds() {
        assert!(client_config(&Trust::Insecure).is_ok());
    }
}
