//! The upstream of proxy-cache projects: wharf-registry's `Upstream` seam
//! answered from the replication endpoint a project names in `registry_id`.
//!
//! `/v2/<project>/<rest>` maps to the upstream repository `<rest>`; on
//! Docker Hub a single-component `<rest>` is an official image, `library/<rest>`.
//! One client per endpoint is kept (so bearer tokens are reused) until the
//! endpoint is edited. An endpoint that failed with a network error or a
//! 5xx is not asked again for [`HOLD_OFF`]: the cache answers from what it
//! holds at once instead of waiting on connect timeouts for every pull.
//!
//! ```ignore
//! let proxy = ProxyCache::new(registries, Duration::from_secs(config.proxy_recheck_secs));
//! let registry = registry.with_upstream(Arc::new(proxy));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use wharf_oci::{Digest, Reference, RepositoryName};
use wharf_registry::seams::{
    Upstream, UpstreamBlob, UpstreamError, UpstreamManifest, UpstreamSource,
};

use crate::client::{RegistryClient, ReplicationError};
use crate::registries::Registries;

/// How long an endpoint that failed is left alone.
pub const HOLD_OFF: Duration = Duration::from_secs(10);

/// Hosts of Docker Hub's registry API.
const DOCKER_HUB_HOSTS: &[&str] = &[
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "registry.hub.docker.com",
    "hub.docker.com",
];

/// The repository of the upstream at `url` that `rest` (the path after the
/// proxy project) names.
///
/// ```
/// use wharf_replication::proxy::upstream_repository;
/// assert_eq!(upstream_repository("https://registry-1.docker.io", "nginx"), "library/nginx");
/// assert_eq!(upstream_repository("https://registry-1.docker.io", "bitnami/redis"), "bitnami/redis");
/// assert_eq!(upstream_repository("http://127.0.0.1:5000", "nginx"), "nginx");
/// ```
pub fn upstream_repository(url: &str, rest: &str) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    let hub = host.is_some_and(|h| DOCKER_HUB_HOSTS.contains(&h.as_str()));
    if hub && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_owned()
    }
}

struct CachedClient {
    updated_at: DateTime<Utc>,
    client: Arc<RegistryClient>,
}

/// Endpoints that failed recently, by registry id: until when, and why.
type Failures = Arc<Mutex<HashMap<i64, (Instant, String)>>>;

/// Answers `Upstream` from the stored replication endpoints.
pub struct ProxyCache {
    registries: Registries,
    recheck: Duration,
    clients: Mutex<HashMap<i64, CachedClient>>,
    failures: Failures,
}

impl ProxyCache {
    /// Cached tags are trusted for `recheck` before the upstream is asked
    /// again (`[replication] proxy_recheck_secs`).
    pub fn new(registries: Registries, recheck: Duration) -> Self {
        Self {
            registries,
            recheck,
            clients: Mutex::new(HashMap::new()),
            failures: Arc::default(),
        }
    }

    async fn client(
        &self,
        id: i64,
        updated_at: DateTime<Utc>,
    ) -> Result<Arc<RegistryClient>, UpstreamError> {
        if let Some(cached) = self.clients.lock().expect("proxy clients").get(&id)
            && cached.updated_at == updated_at
        {
            return Ok(cached.client.clone());
        }
        let client = match self.registries.client(id).await {
            Ok(Some(client)) => Arc::new(client),
            Ok(None) => {
                return Err(UpstreamError::Unavailable(format!(
                    "registry {id} was deleted"
                )));
            }
            Err(e) => return Err(to_upstream(e)),
        };
        self.clients.lock().expect("proxy clients").insert(
            id,
            CachedClient {
                updated_at,
                client: client.clone(),
            },
        );
        Ok(client)
    }
}

fn to_upstream(e: ReplicationError) -> UpstreamError {
    match e {
        ReplicationError::Database(e) => UpstreamError::Internal(format!("database error: {e}")),
        other => UpstreamError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Upstream for ProxyCache {
    async fn source(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<Arc<dyn UpstreamSource>>, UpstreamError> {
        let Some((project, rest)) = repository.as_str().split_once('/') else {
            return Ok(None);
        };
        let row: Option<(i64, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT r.id, r.name, r.url, r.updated_at
               FROM projects p JOIN replication_registries r ON r.id = p.registry_id
              WHERE p.name = $1 AND NOT p.deleted",
        )
        .bind(project)
        .fetch_optional(self.registries.pool())
        .await
        .map_err(|e| UpstreamError::Internal(format!("database error: {e}")))?;
        let Some((id, name, url, updated_at)) = row else {
            return Ok(None);
        };
        let client = self.client(id, updated_at).await?;
        let repo = upstream_repository(&url, rest);
        Ok(Some(Arc::new(ProxySource {
            label: format!("registry {name:?} at {url} (repository {repo})"),
            registry_id: id,
            client,
            repo,
            failures: self.failures.clone(),
        })))
    }

    fn recheck_interval(&self) -> Duration {
        self.recheck
    }
}

/// One upstream repository.
struct ProxySource {
    label: String,
    registry_id: i64,
    client: Arc<RegistryClient>,
    repo: String,
    failures: Failures,
}

impl ProxySource {
    /// Refuse at once while the endpoint is held off.
    fn check_held_off(&self) -> Result<(), UpstreamError> {
        let mut failures = self.failures.lock().expect("proxy failures");
        match failures.get(&self.registry_id) {
            Some((until, cause)) if Instant::now() < *until => Err(UpstreamError::Unavailable(
                format!("{cause} (not retried for a few seconds)"),
            )),
            Some(_) => {
                failures.remove(&self.registry_id);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Map an error, holding the endpoint off when it is down.
    fn failed(&self, e: ReplicationError) -> UpstreamError {
        if e.is_transient() {
            self.failures
                .lock()
                .expect("proxy failures")
                .insert(self.registry_id, (Instant::now() + HOLD_OFF, e.to_string()));
        }
        to_upstream(e)
    }
}

#[async_trait]
impl UpstreamSource for ProxySource {
    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, UpstreamError> {
        self.check_held_off()?;
        let found = self
            .client
            .head_manifest(&self.repo, &reference.to_string())
            .await
            .map_err(|e| self.failed(e))?;
        found
            .map(|d| {
                Digest::parse(&d).map_err(|e| {
                    UpstreamError::Unavailable(format!(
                        "{} answered an invalid digest {d:?}: {e}",
                        self.label
                    ))
                })
            })
            .transpose()
    }

    async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        self.check_held_off()?;
        let found = self
            .client
            .get_manifest(&self.repo, &reference.to_string())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(found.map(|m| UpstreamManifest {
            bytes: m.bytes,
            media_type: m.media_type,
        }))
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Option<UpstreamBlob>, UpstreamError> {
        self.check_held_off()?;
        let resp = match self.client.get_blob(&self.repo, &digest.to_string()).await {
            Ok(resp) => resp,
            Err(ReplicationError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(e)),
        };
        let size = resp.content_length();
        let stream = resp.bytes_stream().map_err(std::io::Error::other).boxed();
        Ok(Some(UpstreamBlob { size, stream }))
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, UpstreamError> {
        self.check_held_off()?;
        self.client
            .referrers_index(&self.repo, &digest.to_string())
            .await
            .map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_official_images_live_under_library() {
        for url in [
            "https://registry-1.docker.io",
            "https://docker.io",
            "https://Index.Docker.io/",
        ] {
            assert_eq!(upstream_repository(url, "alpine"), "library/alpine");
            assert_eq!(upstream_repository(url, "library/alpine"), "library/alpine");
            assert_eq!(upstream_repository(url, "grafana/loki"), "grafana/loki");
        }
        assert_eq!(upstream_repository("https://ghcr.io", "alpine"), "alpine");
        assert_eq!(
            upstream_repository("http://127.0.0.1:5000", "team/app"),
            "team/app"
        );
    }
}
