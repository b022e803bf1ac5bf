//! The outbound HTTP(S) client: notifications to webhooks, and the `teflon release` /
//! `teflon history` calls to a Teflon server. hyper-util's pooled client over rustls (ring),
//! as kube's client is built; it trusts the system's roots and, optionally, one more CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};

pub use http::Method;

/// The client type.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The largest response body read (the rest is an error): answers are small JSON.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// A client could not be built, or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The CA file could not be read or holds no certificate.
    #[error("{path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The request could not be built (a bad URL or header).
    #[error("bad request: {0}")]
    Request(String),
    /// No answer: connection refused or reset, TLS failure, timeout.
    #[error("{0}")]
    Transport(String),
    /// The answer could not be read.
    #[error("reading the answer: {0}")]
    Body(String),
}

/// A client trusting the system's roots and, when given, the certificates of `ca_file` (PEM).
pub fn client(ca_file: Option<&Path>) -> Result<HttpClient, HttpError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are not fatal: a webhook with its own CA still works.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let err = |message: String| HttpError::Ca {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate found".to_owned()));
        }
        for c in certs {
            roots.add(c)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// Send `request` and read the answer (at most [`MAX_RESPONSE_BYTES`]) within `timeout`.
pub async fn send(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes), HttpError> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| HttpError::Transport(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Transport(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// A JSON request (`body`, if any, is JSON) with an optional bearer token: the answer's
/// status and body.
pub async fn json_request(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("teflon/", env!("CARGO_PKG_VERSION")),
        );
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| HttpError::Request(e.to_string()))?;
    let (status, _, bytes) = send(client, req, timeout).await?;
    Ok((status.as_u16(), bytes.to_vec()))
}

/// An error and its sources on one line (hyper's errors say little at the top).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error_that_says_why() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = client(None).unwrap();
        let req = http::Request::post(format!("http://{addr}/hook"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let err = send(&c, req, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, HttpError::Transport(_)), "{err:?}");
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = client(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
