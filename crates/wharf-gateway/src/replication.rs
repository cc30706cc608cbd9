//! Replication's wiring: the sealed-credential key, the registry endpoints,
//! and how this process reaches its own `/v2` as the local side of push- and
//! pull-based policies.
//!
//! The local side goes through `/v2` over HTTP rather than straight into the
//! registry, so a replicated push is admitted (quota, immutability,
//! proxy-cache refusal), audited and announced to webhooks exactly like a
//! client's. Its tokens are minted in-process by `wharf-auth` for the
//! service subject, so no password is stored for it anywhere.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use sqlx::PgPool;
use wharf_auth::Auth;
use wharf_replication::client::TokenSource;
use wharf_replication::crypto::SecretKey;
use wharf_replication::registries::{LocalRegistry, Registries};
use wharf_replication::{Endpoint, RegistryClient, ReplicationError};

use crate::config::Config;

/// This Wharf, as replication's local endpoint.
pub struct LocalWharf {
    /// The URL, set once known (configured, or the listener's address after
    /// it is bound), and whether to skip certificate checks: only on
    /// loopback to our own TLS listener, whose certificate names the public
    /// host, not 127.0.0.1.
    url: OnceLock<(String, bool)>,
    auth: Auth,
}

impl LocalWharf {
    /// From `replication.local_url`, else `fallback` (the external URL, for
    /// `wharf worker`); `wharf serve` sets its listener later with
    /// [`LocalWharf::listening_on`] when neither is given.
    pub fn new(config: &Config, auth: Auth, fallback: Option<&str>) -> Arc<Self> {
        let local = Arc::new(Self {
            url: OnceLock::new(),
            auth,
        });
        if let Some(url) = config.replication.local_url.as_deref().or(fallback) {
            let _ = local.url.set((url.trim_end_matches('/').to_owned(), false));
        }
        local
    }

    /// Use the bound listener, unless a URL was configured.
    pub fn listening_on(&self, addrs: &[SocketAddr], tls: bool) {
        let Some(addr) = addrs.first() else { return };
        let _ = self.url.set((loopback_url(*addr, tls), tls));
    }
}

/// `0.0.0.0:8080` → `http://127.0.0.1:8080`: a wildcard listener is reached
/// on loopback.
fn loopback_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{ip}:{}", addr.port())
}

struct ServiceTokens(Auth);

#[async_trait::async_trait]
impl TokenSource for ServiceTokens {
    async fn token(&self, scopes: &[String]) -> Result<String, ReplicationError> {
        self.0
            .service_token(scopes)
            .await
            .map_err(|e| ReplicationError::Auth(format!("this Wharf's own token issuer: {e}")))
    }
}

impl LocalRegistry for LocalWharf {
    fn client(&self) -> Result<RegistryClient, ReplicationError> {
        let (url, insecure) = self.url.get().ok_or_else(|| {
            ReplicationError::Invalid(
                "this process does not know its own registry URL: set replication.local_url \
                 (WHARF_REPLICATION_LOCAL_URL) or external_url"
                    .into(),
            )
        })?;
        let endpoint = Endpoint::new(url)?
            .insecure(*insecure)
            .with_token_source(Arc::new(ServiceTokens(self.auth.clone())));
        RegistryClient::new(endpoint)
    }
}

/// The registries table with its sealing key (loaded, or generated at first
/// start) and `local` as the local endpoint.
pub async fn registries(
    pool: &PgPool,
    config: &Config,
    local: Arc<LocalWharf>,
) -> anyhow::Result<Registries> {
    let path = config.replication.credential_key.clone();
    let key = tokio::task::spawn_blocking(move || SecretKey::load_or_generate(&path))
        .await
        .context("loading the replication credential key stopped")?
        .with_context(|| {
            format!(
                "cannot load the replication credential key {} (replication.credential_key): \
                 every replica needs the same key file",
                config.replication.credential_key.display()
            )
        })?;
    Ok(Registries::new(pool.clone(), Arc::new(key)).with_local(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        let url = |s: &str, tls| loopback_url(s.parse().unwrap(), tls);
        assert_eq!(url("0.0.0.0:8080", false), "http://127.0.0.1:8080");
        assert_eq!(url("[::]:5000", true), "https://[::1]:5000");
        assert_eq!(url("10.1.2.3:80", false), "http://10.1.2.3:80");
        assert_eq!(url("[fe80::1]:80", false), "http://[fe80::1]:80");
    }
}
