//! The settings of Streetscope's HTTP servers (the registry API, the status
//! endpoints): what a client may send and for how long, how many connections
//! are served at once, and TLS. The serving itself is `streetscope-http`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::FieldError;

/// Limits and TLS of an HTTP server. Every limit has a default that suits the
/// registry API; a request over a limit is answered 413, 408 or 429 (see each field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// The largest request body, in bytes; a larger one is answered 413
    /// (Content Too Large) before it is read. The largest valid camera spec is
    /// well under 256 KiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Seconds a client has to send a request's headers, and the longest a
    /// kept-alive connection waits idle for its next request; then the
    /// connection is closed. A client sending a byte a second holds nothing longer.
    #[serde(default = "default_header_timeout_s")]
    pub header_timeout_s: f64,
    /// Seconds from a request's headers to its answer, body included; a request
    /// that takes longer (a body sent slowly) is answered 408 (Request Timeout)
    /// and its connection closed.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: f64,
    /// Connections served at once. A connection beyond it is answered 429 (Too
    /// Many Requests, `Retry-After: 1`) and closed; with TLS it is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Serve HTTPS with this certificate and key, for deployments without a
    /// terminating proxy. None: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

/// A certificate and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

fn default_max_body_bytes() -> u64 {
    1 << 20
}

fn default_header_timeout_s() -> f64 {
    10.0
}

fn default_request_timeout_s() -> f64 {
    30.0
}

fn default_max_connections() -> u32 {
    256
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            header_timeout_s: default_header_timeout_s(),
            request_timeout_s: default_request_timeout_s(),
            max_connections: default_max_connections(),
            tls: None,
        }
    }
}

impl HttpServerConfig {
    /// Checks every field; errors name `prefix.field` and the value.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let f = |name: &str| format!("{prefix}.{name}");
        if !(1024..=1 << 30).contains(&self.max_body_bytes) {
            errs.push(FieldError::new(f("max_body_bytes"), self.max_body_bytes.to_string(), "must be in [1024, 2^30]"));
        }
        for (name, v) in [("header_timeout_s", self.header_timeout_s), ("request_timeout_s", self.request_timeout_s)] {
            if !(0.01..=3600.0).contains(&v) {
                errs.push(FieldError::new(f(name), v.to_string(), "must be in [0.01, 3600] seconds"));
            }
        }
        if !(1..=100_000).contains(&self.max_connections) {
            errs.push(FieldError::new(
                f("max_connections"),
                self.max_connections.to_string(),
                "must be in [1, 100000]",
            ));
        }
        if let Some(tls) = &self.tls {
            for (name, p) in [("tls.cert_file", &tls.cert_file), ("tls.key_file", &tls.key_file)] {
                if p.as_os_str().is_empty() {
                    errs.push(FieldError::new(f(name), "\"\"", "must name a PEM file"));
                }
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(HttpServerConfig::default().validate("registry").is_empty());
        let bad: HttpServerConfig = toml::from_str(
            "max_body_bytes = 10\nheader_timeout_s = nan\nrequest_timeout_s = 0\nmax_connections = 0\n\
             [tls]\ncert_file = ''\nkey_file = 'k.pem'\n",
        )
        .unwrap();
        let fields: Vec<String> = bad.validate("registry").into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "registry.max_body_bytes",
                "registry.header_timeout_s",
                "registry.request_timeout_s",
                "registry.max_connections",
                "registry.tls.cert_file"
            ]
        );
        assert!(toml::from_str::<HttpServerConfig>("max_body = 1").is_err(), "unknown fields are refused");
    }
}
