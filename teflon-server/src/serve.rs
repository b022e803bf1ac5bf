//! Serving the warp filter over TCP or TLS (rustls, with optional client certificates) through
//! hyper-util, with graceful shutdown. warp 0.4 has no TLS of its own.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use socket2::TcpKeepalive;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::auth::VerifiedClientCert;
use crate::config::TlsConfig;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a connection's read buffer holds. hyper grows it with the reads (to the size of
/// a large batch) and keeps it while the connection lives, since it reads ahead to notice a
/// peer that closes while a response is pending: 256 keep-alive senders of 160 KiB batches
/// held 54 MiB of buffers that way (heaptrack). Headers must fit in it; bodies are read
/// through it in pieces of at most this size.
const READ_BUFFER_MAX: usize = 32 * 1024;
/// TCP keepalive on accepted connections: the connection of a sender whose node died without
/// closing it (no FIN, no RST) is closed after 60 s of silence and 9 unanswered probes 10 s
/// apart (Linux's default count), instead of holding a socket and a task forever. Live idle
/// keep-alive senders answer the probes and are not affected.
const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10));
/// How long shutdown waits for open connections to finish their requests.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(15);

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

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
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

/// A rustls server config from PEM files; with `client_ca`, client certificates signed by it
/// are verified (and optional: clients without one can still use the bearer token).
pub fn server_config(
    tls: &TlsConfig,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
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
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Socket options of an accepted connection (best effort: a failure only loses the option).
fn configure(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&KEEPALIVE) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Serve `routes` on `listener` (TLS when `tls` is given) until `shutdown` resolves, then
/// stop accepting and wait (bounded) for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: BoxedFilter<(Response,)>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        configure(&stream);
        let routes = routes.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().max_buf_size(READ_BUFFER_MAX);
            match tls {
                None => {
                    let svc = TowerToHyperService::new(warp::service(routes));
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection error");
                    }
                }
                Some(acceptor) => {
                    let tls_stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // rustls only completes the handshake with a certificate the CA verified.
                    let verified = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let svc = warp::service(routes).map_request(
                        move |mut req: http::Request<hyper::body::Incoming>| {
                            if verified {
                                req.extensions_mut().insert(VerifiedClientCert);
                            }
                            req
                        },
                    );
                    let svc = TowerToHyperService::new(svc);
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection error");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACEFUL_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the graceful timeout; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_get_nodelay_and_tcp_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        configure(&accepted);
        assert!(accepted.nodelay().unwrap());
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
    }
}
