//! Who may POST alerts: a bearer token (constant-time comparison) or a TLS client certificate
//! verified against the configured CA, or explicitly nobody checks (`auth: none`).

use std::path::PathBuf;

use subtle::ConstantTimeEq;

use crate::config::AuthConfig;

/// The authentication settings could not be turned into a checker.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read.
    #[error("auth.token_file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token environment variable is unset or not UTF-8.
    #[error("auth.token_env: environment variable {0} is not set")]
    TokenEnv(String),
    /// The token is empty.
    #[error("auth: the bearer token is empty")]
    EmptyToken,
}

/// Set by the TLS acceptor on requests of a connection whose client certificate the
/// configured CA verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedClientCert;

/// The request's credentials are checked against this.
#[derive(Clone)]
pub struct Authenticator {
    token: Option<Vec<u8>>,
    client_certs: bool,
    open: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_certs", &self.client_certs)
            .field("open", &self.open)
            .finish()
    }
}

impl Authenticator {
    /// Build from the config, reading the token file or variable.
    pub fn from_config(auth: &AuthConfig) -> Result<Authenticator, AuthError> {
        let token = if let Some(path) = &auth.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::TokenFile {
                path: path.clone(),
                source,
            })?;
            Some(text.trim().as_bytes().to_vec())
        } else if let Some(var) = &auth.token_env {
            let v = std::env::var(var).map_err(|_| AuthError::TokenEnv(var.clone()))?;
            Some(v.trim().as_bytes().to_vec())
        } else {
            None
        };
        if token.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthError::EmptyToken);
        }
        Ok(Authenticator {
            token,
            client_certs: auth.client_ca_file.is_some(),
            open: auth.none,
        })
    }

    /// A checker accepting this bearer token only.
    pub fn with_token(token: impl Into<Vec<u8>>) -> Authenticator {
        Authenticator {
            token: Some(token.into()),
            client_certs: false,
            open: false,
        }
    }

    /// A checker letting everyone in (`auth: none`).
    pub fn open() -> Authenticator {
        Authenticator {
            token: None,
            client_certs: false,
            open: true,
        }
    }

    /// True when nothing is checked.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Is a request with this `Authorization` header (and a verified client certificate or
    /// not) authenticated?
    pub fn check(&self, authorization: Option<&[u8]>, verified_cert: bool) -> bool {
        if self.open {
            return true;
        }
        if self.client_certs && verified_cert {
            return true;
        }
        let (Some(expected), Some(header)) = (&self.token, authorization) else {
            return false;
        };
        let Some(presented) = bearer(header) else {
            return false;
        };
        // Lengths leak through timing at most; the contents do not.
        presented.ct_eq(expected.as_slice()).into()
    }
}

/// The credentials of `Bearer <token>` (scheme case-insensitive, surrounding spaces ignored).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    if header.len() < 7 || !header[..6].eq_ignore_ascii_case(b"bearer") || header[6] != b' ' {
        return None;
    }
    Some(header[7..].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_token_is_accepted_and_others_are_not() {
        let a = Authenticator::with_token("s3cret");
        assert!(a.check(Some(b"Bearer s3cret"), false));
        assert!(a.check(Some(b"bearer  s3cret "), false));
        assert!(!a.check(Some(b"Bearer s3cre"), false));
        assert!(!a.check(Some(b"Bearer s3cretx"), false));
        assert!(!a.check(Some(b"Basic s3cret"), false));
        assert!(!a.check(Some(b"s3cret"), false));
        assert!(!a.check(None, false));
    }

    #[test]
    fn a_verified_client_certificate_counts_only_when_a_client_ca_is_configured() {
        let token_only = Authenticator::with_token("t");
        assert!(!token_only.check(None, true));
        let mtls = Authenticator::from_config(&AuthConfig {
            client_ca_file: Some("ca.pem".into()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(mtls.check(None, true));
        assert!(!mtls.check(None, false));
        assert!(!mtls.check(Some(b"Bearer anything"), false));
    }

    #[test]
    fn auth_none_lets_everyone_in() {
        assert!(Authenticator::open().check(None, false));
    }

    #[test]
    fn an_empty_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "\n").unwrap();
        let err = Authenticator::from_config(&AuthConfig {
            token_file: Some(p),
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, AuthError::EmptyToken));
    }
}
