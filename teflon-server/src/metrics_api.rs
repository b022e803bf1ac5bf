//! The custom-metrics API listener (SPEC §8): `custom.metrics.k8s.io` v1beta2 and v1beta1 over
//! HTTPS, for an `APIService` (see `deploy/custom-metrics/` and `docs/custom-metrics.md`).
//!
//! Every answer is rendered by [`teflon_metrics::custom_metrics::handle`] from the latest
//! attack snapshot and the cluster view; this module only serves it: a warp filter, served
//! through hyper-util + tokio-rustls ([`crate::serve::serve`]; warp 0.4 has no TLS).
//!
//! Authentication is the one an aggregated API server expects: kube-apiserver authenticates
//! and authorizes the caller (the HPA controller), then proxies the request presenting its
//! front-proxy client certificate. With a requestheader CA (`client_ca_file`, or the
//! `requestheader-client-ca-file` key of the `kube-system/extension-apiserver-authentication`
//! ConfigMap, read by the caller and passed to [`bind`]) the TLS handshake refuses any client
//! without a certificate signed by it. Without one, the API is open to whoever reaches the port
//! (a warning is logged): acceptable in a NetworkPolicy-fenced namespace or for local tests only.
//! The serving certificate comes from `cert_file`/`key_file`, or is generated (self-signed) at
//! start; the APIService then needs `insecureSkipTLSVerify: true` or the `caBundle` of a
//! certificate you provide (the trade-off is documented in `docs/custom-metrics.md`).
//!
//! Size: about 410 lines before its tests, kept in one file: one listener: its TLS, front-proxy
//! authentication and routing share the listener's state.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use teflon_metrics::AttackSnapshot;
use teflon_metrics::custom_metrics::{handle, status};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::backend::SharedView;
use crate::config::MetricsApiConfig;
use crate::tls::{Alpn, ClientCerts, TlsError};

/// Names in the generated certificate: the Service of `deploy/custom-metrics/` and localhost.
pub const SELF_SIGNED_NAMES: &[&str] = &[
    "teflon-metrics-api",
    "teflon-metrics-api.teflon",
    "teflon-metrics-api.teflon.svc",
    "teflon-metrics-api.teflon.svc.cluster.local",
    "localhost",
    "127.0.0.1",
];

/// Namespace of the ConfigMap holding the requestheader CA.
pub const REQUESTHEADER_CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap holding the requestheader CA.
pub const REQUESTHEADER_CONFIGMAP_NAME: &str = "extension-apiserver-authentication";
/// Its key with the PEM CA bundle that signs the front proxy's client certificate.
pub const REQUESTHEADER_CA_KEY: &str = "requestheader-client-ca-file";
/// Its key with the allowed common names (a JSON array; empty = any).
pub const REQUESTHEADER_ALLOWED_NAMES_KEY: &str = "requestheader-allowed-names";

/// The custom-metrics API could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsApiError {
    /// A PEM file could not be read.
    #[error("metrics_api: {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PEM material holds nothing usable.
    #[error("metrics_api: {what}: {problem}")]
    Pem {
        /// Which material (a path, or `requestheader CA`).
        what: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Only one of `cert_file` and `key_file` was given.
    #[error("metrics_api: give both cert_file and key_file, or neither (self-signed)")]
    HalfCertificate,
    /// The self-signed certificate could not be generated.
    #[error("metrics_api: generating the self-signed certificate: {0}")]
    SelfSigned(String),
    /// rustls refused the material, or the client CA.
    #[error("metrics_api {0}")]
    Tls(#[from] TlsError),
    /// The listener could not bind.
    #[error("metrics_api: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `extension-apiserver-authentication` ConfigMap lacks what is needed.
    #[error(
        "ConfigMap kube-system/extension-apiserver-authentication: {0} (is the API server run with --requestheader-client-ca-file?)"
    )]
    ConfigMap(String),
}

/// What kube-apiserver publishes for extension API servers about its front proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderAuth {
    /// PEM bundle of the CA signing the front proxy's client certificate.
    pub client_ca_pem: String,
    /// Common names the front proxy's certificate may carry (empty: any). Informational:
    /// the handshake checks the CA only; in kubeadm clusters that CA signs nothing else.
    pub allowed_names: Vec<String>,
}

/// Read [`RequestHeaderAuth`] from the `extension-apiserver-authentication` ConfigMap as JSON
/// (`kubectl get cm -n kube-system extension-apiserver-authentication -o json`, or a kube
/// client's `Api::<ConfigMap>::get`, serialized).
pub fn requestheader_from_configmap(
    configmap: &serde_json::Value,
) -> Result<RequestHeaderAuth, MetricsApiError> {
    let data = configmap
        .get("data")
        .ok_or_else(|| MetricsApiError::ConfigMap("no data".to_owned()))?;
    let ca = data
        .get(REQUESTHEADER_CA_KEY)
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| MetricsApiError::ConfigMap(format!("no {REQUESTHEADER_CA_KEY}")))?;
    let allowed_names = data
        .get(REQUESTHEADER_ALLOWED_NAMES_KEY)
        .and_then(|v| v.as_str())
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default();
    Ok(RequestHeaderAuth {
        client_ca_pem: ca.to_owned(),
        allowed_names,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, MetricsApiError> {
    std::fs::read(path).map_err(|source| MetricsApiError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, MetricsApiError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|_| MetricsApiError::Pem {
            what: what.to_owned(),
            problem: "unreadable PEM",
        })?;
    if certs.is_empty() {
        return Err(MetricsApiError::Pem {
            what: what.to_owned(),
            problem: "no PEM certificate found",
        });
    }
    Ok(certs)
}

/// The serving certificate chain and key: from the configured files, or self-signed for
/// [`SELF_SIGNED_NAMES`].
pub fn serving_identity(
    config: &MetricsApiConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MetricsApiError> {
    match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let chain = pem_certs(&read(cert)?, &cert.display().to_string())?;
            let key_pem = read(key)?;
            let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
                .ok()
                .flatten()
                .ok_or_else(|| MetricsApiError::Pem {
                    what: key.display().to_string(),
                    problem: "no PEM private key found",
                })?;
            Ok((chain, key_der))
        }
        (None, None) => {
            let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| (*s).to_owned()).collect();
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|e| MetricsApiError::SelfSigned(e.to_string()))?;
            let cert = generated.cert.der().clone();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                generated.signing_key.serialize_der(),
            ));
            Ok((vec![cert], key))
        }
        _ => Err(MetricsApiError::HalfCertificate),
    }
}

/// A rustls server config: the serving identity, and, with `client_ca_pem`, mandatory client
/// certificates signed by it. The aggregator speaks HTTP/2 to extension servers when offered.
pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, MetricsApiError> {
    let clients = match client_ca_pem {
        Some(pem) => ClientCerts::Required(pem_certs(pem, "requestheader CA")?),
        None => ClientCerts::None,
    };
    Ok(crate::tls::server_config(chain, key, clients, Alpn::Http2)?)
}

fn json_response(code: u16, body: String) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    res
}

/// The routes: `GET /apis/custom.metrics.k8s.io/…` (rendered by
/// [`teflon_metrics::custom_metrics::handle`]), `GET /healthz`, `/livez`, `/readyz`; any other
/// method is a 405 `Status`.
pub fn routes(
    snapshot: watch::Receiver<Arc<AttackSnapshot>>,
    view: SharedView,
) -> BoxedFilter<(Response,)> {
    let health = warp::get()
        .and(
            warp::path("healthz")
                .or(warp::path("livez"))
                .unify()
                .or(warp::path("readyz"))
                .unify(),
        )
        .and(warp::path::end())
        .map(|| Response::new("ok".into()));
    let openapi = warp::get()
        .and(warp::path("openapi"))
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|tail: warp::path::Tail, if_none_match: Option<String>| {
            openapi_reply(tail.as_str(), if_none_match.as_deref())
        });
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let api = warp::get().and(warp::path::full()).and(query).map(
        move |path: warp::path::FullPath, query: String| {
            let snap = snapshot.borrow().clone();
            let q = (!query.is_empty()).then_some(query.as_str());
            let (code, body) = handle(path.as_str(), q, &snap, view.as_ref());
            json_response(code, body)
        },
    );
    let other = warp::any().map(|| {
        json_response(
            405,
            status(
                405,
                "MethodNotAllowed",
                "the custom metrics API only serves GET",
            ),
        )
    });
    health
        .or(openapi)
        .unify()
        .or(api)
        .unify()
        .or(other)
        .unify()
        .boxed()
}

/// `GET /openapi/v2`, `/openapi/v3` and `/openapi/v3/apis/custom.metrics.k8s.io/{version}`
/// (`tail` is what follows `/openapi/`), with `ETag` and `304 Not Modified`.
fn openapi_reply(tail: &str, if_none_match: Option<&str>) -> Response {
    let doc = match tail.trim_end_matches('/') {
        "v2" => Some(crate::openapi::v2()),
        "v3" => Some(crate::openapi::v3_discovery()),
        other => other
            .strip_prefix("v3/apis/custom.metrics.k8s.io/")
            .and_then(crate::openapi::v3),
    };
    let Some(doc) = doc else {
        return json_response(
            404,
            status(
                404,
                "NotFound",
                format!("no OpenAPI document at /openapi/{tail}"),
            ),
        );
    };
    let mut res = if if_none_match.is_some_and(|v| doc.matches(v)) {
        let mut r = Response::new(String::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(200, doc.body.clone())
    };
    if let Ok(v) = warp::http::HeaderValue::from_str(&doc.etag) {
        res.headers_mut().insert(warp::http::header::ETAG, v);
    }
    res
}

/// A bound, not yet serving, custom-metrics API.
pub struct MetricsApiServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    routes: BoxedFilter<(Response,)>,
    local_addr: SocketAddr,
    certificate: CertificateDer<'static>,
    client_auth: bool,
}

impl std::fmt::Debug for MetricsApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsApiServer")
            .field("local_addr", &self.local_addr)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl MetricsApiServer {
    /// The bound address (`listen` with port 0 picks one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The serving certificate (DER): the `caBundle` to give the APIService when self-signed.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// True when clients must present a certificate signed by the requestheader CA.
    pub fn client_auth(&self) -> bool {
        self.client_auth
    }

    /// Serve until `shutdown` resolves, then let open requests finish (bounded).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tracing::info!(
            address = %self.local_addr,
            client_auth = self.client_auth,
            "custom metrics API listening (https)"
        );
        crate::serve::serve(self.listener, Some(self.acceptor), self.routes, shutdown).await;
    }
}

/// Bind the custom-metrics API. The requestheader CA is `config.client_ca_file` when set, else
/// `requestheader_ca_pem` (e.g. [`requestheader_from_configmap`] of the cluster's ConfigMap),
/// else none: any client is served (and a warning logged).
pub async fn bind(
    config: &MetricsApiConfig,
    requestheader_ca_pem: Option<&[u8]>,
    snapshot: watch::Receiver<Arc<AttackSnapshot>>,
    view: SharedView,
) -> Result<MetricsApiServer, MetricsApiError> {
    let (chain, key) = serving_identity(config)?;
    let certificate = chain.first().cloned().ok_or(MetricsApiError::Pem {
        what: "serving certificate".to_owned(),
        problem: "empty chain",
    })?;
    let file_ca = match &config.client_ca_file {
        Some(p) => Some(read(p)?),
        None => None,
    };
    let ca = file_ca.as_deref().or(requestheader_ca_pem);
    if ca.is_none() {
        tracing::warn!(
            "metrics_api: no requestheader CA (client_ca_file): the custom metrics API answers any client that reaches it"
        );
    }
    if config.cert_file.is_none() {
        tracing::info!(
            "metrics_api: serving a self-signed certificate; the APIService needs insecureSkipTLSVerify or this certificate as caBundle"
        );
    }
    let tls = tls_config(chain, key, ca)?;
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsApiError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsApiError::Bind { addr, source })?;
    Ok(MetricsApiServer {
        listener,
        acceptor: TlsAcceptor::from(tls),
        routes: routes(snapshot, view),
        local_addr,
        certificate,
        client_auth: ca.is_some(),
    })
}

/// Bind with `config` (requestheader CA from `client_ca_file` only) and serve until
/// `shutdown` resolves.
pub async fn serve(
    config: &MetricsApiConfig,
    snapshot: watch::Receiver<Arc<AttackSnapshot>>,
    view: SharedView,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MetricsApiError> {
    bind(config, None, snapshot, view)
        .await?
        .run(shutdown)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use teflon_core::{StaticCluster, Timestamp, WorkloadKind, WorkloadRef, WorkloadStats};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsConnector;

    use super::*;

    fn config() -> MetricsApiConfig {
        MetricsApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert_file: None,
            key_file: None,
            client_ca_file: None,
        }
    }

    fn shared() -> (watch::Receiver<Arc<AttackSnapshot>>, SharedView) {
        let snap = AttackSnapshot {
            at: Timestamp::from_secs(1_700_000_000),
            window: Duration::from_secs(60),
            workloads: vec![WorkloadStats {
                workload: WorkloadRef::new(WorkloadKind::Deployment, "shop", "web"),
                infections_total: 3,
                hits_total: 0,
                backlog: 0,
                infected_pods: 1,
                infection_rate_per_minute: 3.0,
                time_to_recreation: Some(Duration::from_secs(20)),
                reaps_total: 2,
                desired: 3,
                available: 2,
                available_ratio: 2.0 / 3.0,
                min_available: 2,
                replicas_needed: 3,
                attack_pressure: 1.0,
            }],
            infected_pods: BTreeSet::from([("shop".to_owned(), "web-0".to_owned())]),
        };
        let (tx, rx) = watch::channel(Arc::new(snap));
        std::mem::forget(tx);
        let view: SharedView = Arc::new(StaticCluster::new().deployment("shop", "web", 3, 3));
        (rx, view)
    }

    async fn request(
        server_cert: &CertificateDer<'static>,
        addr: SocketAddr,
        client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        path: &str,
    ) -> std::io::Result<String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server_cert.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match client {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut out = String::new();
        tls.read_to_string(&mut out).await?;
        Ok(out)
    }

    fn body(response: &str) -> serde_json::Value {
        let (_, body) = response.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn self_signed_https_listener_serves_discovery_after_a_real_handshake() {
        let (snap, view) = shared();
        let server = bind(&config(), None, snap, view).await.unwrap();
        let (addr, cert) = (server.local_addr(), server.certificate().clone());
        assert!(!server.client_auth());
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let res = request(&cert, addr, None, "/apis/custom.metrics.k8s.io/v1beta2")
            .await
            .unwrap();
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        let json = body(&res);
        assert_eq!(json["kind"], "APIResourceList");
        assert_eq!(json["groupVersion"], "custom.metrics.k8s.io/v1beta2");
        let res = request(
            &cert,
            addr,
            None,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/teflon_attack_pressure",
        )
        .await
        .unwrap();
        assert_eq!(body(&res)["items"][0]["value"], "1");
        let res = request(
            &cert,
            addr,
            None,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/nope/teflon_attack_pressure",
        )
        .await
        .unwrap();
        assert!(res.starts_with("HTTP/1.1 404"), "{res}");
        assert_eq!(body(&res)["kind"], "Status");
        let _ = stop.send(true);
        task.await.unwrap();
    }

    fn ca_and_client() -> (
        String,
        (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    ) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params =
            rcgen::CertificateParams::new(vec!["front-proxy-client".to_owned()]).unwrap();
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "front-proxy-client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
        (
            ca_cert.pem(),
            (
                vec![client_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
            ),
        )
    }

    #[tokio::test]
    async fn with_a_requestheader_ca_only_the_front_proxy_certificate_is_served() {
        let (snap, view) = shared();
        let (ca_pem, client) = ca_and_client();
        let server = bind(&config(), Some(ca_pem.as_bytes()), snap, view)
            .await
            .unwrap();
        assert!(server.client_auth());
        let (addr, cert) = (server.local_addr(), server.certificate().clone());
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let path = "/apis/custom.metrics.k8s.io/v1beta1";
        let res = request(&cert, addr, Some(client), path).await.unwrap();
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
        assert_eq!(body(&res)["groupVersion"], "custom.metrics.k8s.io/v1beta1");
        // Without a client certificate the handshake (or the first read) fails: no response.
        let anonymous = request(&cert, addr, None, path).await;
        assert!(
            anonymous
                .as_ref()
                .map_or(true, |r| !r.contains("HTTP/1.1 200")),
            "{anonymous:?}"
        );
        let _ = stop.send(true);
        task.await.unwrap();
    }

    #[test]
    fn the_requestheader_ca_is_read_from_the_configmap() {
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {
                "client-ca-file": "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n",
                "requestheader-allowed-names": "[\"front-proxy-client\"]",
                "requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n",
                "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
                "requestheader-group-headers": "[\"X-Remote-Group\"]",
                "requestheader-username-headers": "[\"X-Remote-User\"]"
            }
        });
        let auth = requestheader_from_configmap(&cm).unwrap();
        assert!(auth.client_ca_pem.contains("BBB"));
        assert_eq!(auth.allowed_names, vec!["front-proxy-client".to_owned()]);
        let e = requestheader_from_configmap(&serde_json::json!({"data": {}})).unwrap_err();
        assert!(
            e.to_string().contains("requestheader-client-ca-file"),
            "{e}"
        );
    }

    #[test]
    fn only_a_certificate_without_its_key_is_a_config_error() {
        let mut c = config();
        c.cert_file = Some("/tmp/cert.pem".into());
        assert!(matches!(
            serving_identity(&c),
            Err(MetricsApiError::HalfCertificate)
        ));
    }

    #[tokio::test]
    async fn openapi_v2_and_v3_are_served_as_the_aggregator_asks_with_etags() {
        let (snap, view) = shared();
        let routes = routes(snap, view);
        // As kube-aggregator's downloaders ask: Accept: application/json.
        let get = |path: &str, etag: Option<&str>| {
            let mut r = warp::test::request()
                .path(path)
                .header("accept", "application/json");
            if let Some(e) = etag {
                r = r.header("if-none-match", e);
            }
            r.reply(&routes)
        };
        let res = get("/openapi/v2", None).await;
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["swagger"], "2.0");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let res = get("/openapi/v2", Some(&etag)).await;
        assert_eq!(res.status(), 304);
        assert!(res.body().is_empty());

        let res = get("/openapi/v3", None).await;
        assert_eq!(res.status(), 200);
        let d: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        let url = d["paths"]["apis/custom.metrics.k8s.io/v1beta2"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .to_owned();
        // The aggregator proxies the path (with its query) to the APIService.
        let res = get(&url, None).await;
        assert_eq!(res.status(), 200, "{url}");
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["openapi"], "3.0.0");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert!(url.ends_with(etag.trim_matches('"')));
        assert_eq!(get(&url, Some(&etag)).await.status(), 304);
        assert_eq!(
            get("/openapi/v3/apis/custom.metrics.k8s.io/v9", None)
                .await
                .status(),
            404
        );
    }

    #[tokio::test]
    async fn other_methods_get_a_405_status_and_health_answers_ok() {
        let (snap, view) = shared();
        let routes = routes(snap, view);
        let res = warp::test::request()
            .method("POST")
            .path("/apis/custom.metrics.k8s.io/v1beta2")
            .reply(&routes)
            .await;
        assert_eq!(res.status(), 405);
        let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(json["reason"], "MethodNotAllowed");
        let res = warp::test::request().path("/healthz").reply(&routes).await;
        assert_eq!(res.status(), 200);
        let res = warp::test::request()
            .path("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/teflon_pod_infected?labelSelector=app%3Dweb")
            .reply(&routes)
            .await;
        assert_eq!(res.status(), 200);
        let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(json["items"][0]["value"], "1");
        assert_eq!(res.headers()["content-type"], "application/json");
    }
}
