//! TLS for both listeners (ingest, and the custom-metrics API): reading PEM material and the
//! one rustls server configuration they share (ring, safe default versions, an optional
//! client-certificate verifier, ALPN).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;

/// TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not be turned into a verifier.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Which client certificates a listener asks for.
#[derive(Debug)]
pub enum ClientCerts {
    /// None.
    None,
    /// Signed by one of these CAs when given; a client without one may still authenticate
    /// otherwise (the ingest listener's bearer token).
    Optional(Vec<CertificateDer<'static>>),
    /// Signed by one of these CAs, or no handshake (the aggregator's front proxy).
    Required(Vec<CertificateDer<'static>>),
}

/// Which HTTP versions ALPN offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2`, then `http/1.1`.
    Http2,
}

/// The rustls server configuration of a listener: `chain` and `key` as its identity.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    clients: ClientCerts,
    alpn: Alpn,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verifier = |cas: Vec<CertificateDer<'static>>| -> Result<_, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in cas {
            roots.add(c)?;
        }
        Ok(WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        ))
    };
    let builder = match clients {
        ClientCerts::None => builder.with_no_client_auth(),
        ClientCerts::Optional(cas) => {
            builder.with_client_cert_verifier(verifier(cas)?.allow_unauthenticated().build()?)
        }
        ClientCerts::Required(cas) => builder.with_client_cert_verifier(verifier(cas)?.build()?),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = match alpn {
        Alpn::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The ingest listener's configuration from PEM files; with `client_ca`, client certificates
/// signed by it are verified (and optional: clients without one can still use the bearer
/// token). ALPN offers `h2` only with `http2`.
pub fn ingest_config(
    tls: &TlsConfig,
    client_ca: Option<&Path>,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs(&tls.cert_file)?;
    let key = rustls_pemfile::private_key(&mut open(&tls.key_file)?)
        .map_err(|source| TlsError::Read {
            path: tls.key_file.clone(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            path: tls.key_file.clone(),
            what: "no PEM private key found",
        })?;
    let clients = match client_ca {
        Some(ca) => ClientCerts::Optional(certs(ca)?),
        None => ClientCerts::None,
    };
    let alpn = if http2 { Alpn::Http2 } else { Alpn::Http1 };
    server_config(chain, key, clients, alpn)
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "no PEM certificate found",
        });
    }
    Ok(certs)
}
