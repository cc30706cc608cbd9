//! Registry core: the OCI Distribution API (`/v2`, spec v1.1 with referrers) with
//! metadata in PostgreSQL and blob bytes in `wharf-store`.
//!
//! ```ignore
//! let registry = Registry::new(pool, store, RegistryConfig::default());
//! App::new().configure(|cfg| registry.configure(cfg));   // mounts /v2/...
//! let maintenance = registry.spawn_maintenance();          // purges abandoned uploads
//! ```
//! Authorisation, admission (quota/immutability), events and the upstream of
//! proxy-cache projects are seams (`seams` module): traits with permissive
//! defaults that later crates replace through the `with_*` builders, without
//! touching the handlers.

mod artifacts;
mod db;
pub mod error;
pub mod gc;
mod http;
mod proxy;
pub mod seams;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use wharf_store::BlobStore;

pub use artifacts::{BlobContent, Tagged};
pub use error::RegistryError;
use seams::{Admission, AdmitAll, AllowAll, Authorizer, EventSink, LogEvents, Upstream};

/// The route template of a request path, for metrics and logs: the `/v2`
/// endpoint it addresses with the variable parts named
/// (`/v2/{name}/manifests/{reference}`, `/v2/{name}/blobs/{digest}`, ...),
/// never a repository name or digest. `None` when the path is not under
/// `/v2` or addresses no registry endpoint. Allocation-free: it runs on
/// every request.
///
/// ```
/// use wharf_registry::route_template;
/// assert_eq!(route_template("/v2/team/app/manifests/v1"), Some("/v2/{name}/manifests/{reference}"));
/// assert_eq!(route_template("/v2"), Some("/v2/"));
/// assert_eq!(route_template("/v2/team/app/nothing"), None);
/// assert_eq!(route_template("/api/v2.0/ping"), None);
/// ```
pub fn route_template(path: &str) -> Option<&'static str> {
    let rest = if path == "/v2" {
        ""
    } else {
        path.strip_prefix("/v2/")?
    };
    http::routes::template(rest)
}

/// Tunables of the registry core (the `[registry]` table of wharf.toml).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    /// Upload sessions untouched for this long are abandoned and purged (seconds).
    pub upload_purge_after_secs: u64,
    /// How often the purge runs (seconds).
    pub maintenance_interval_secs: u64,
    /// Garbage collection leaves alone every blob, link and untagged
    /// manifest recorded less than this long ago (seconds), so layers
    /// uploaded before their manifest survive until it arrives.
    pub gc_grace_period_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            upload_purge_after_secs: 24 * 3600,
            maintenance_interval_secs: 3600,
            gc_grace_period_secs: 2 * 3600,
        }
    }
}

/// Everything a request handler needs; shared by all workers.
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) store: BlobStore,
    pub(crate) config: RegistryConfig,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) admission: Arc<dyn Admission>,
    pub(crate) events: Arc<dyn EventSink>,
    /// Pull-through caching for proxy-cache projects; `None`: no proxying.
    pub(crate) upstream: Option<Arc<dyn Upstream>>,
}

/// The registry service. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// A registry that allows every access and admits every push (until the
    /// RBAC and lifecycle crates plug in their seams) and logs its events.
    pub fn new(pool: PgPool, store: BlobStore, config: RegistryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                store,
                config,
                authorizer: Arc::new(AllowAll),
                admission: Arc::new(AdmitAll),
                events: Arc::new(LogEvents),
                upstream: None,
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner)) -> Self {
        let old = &self.inner;
        let mut inner = Inner {
            pool: old.pool.clone(),
            store: old.store.clone(),
            config: old.config.clone(),
            authorizer: old.authorizer.clone(),
            admission: old.admission.clone(),
            events: old.events.clone(),
            upstream: old.upstream.clone(),
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Decide every access with `authorizer`.
    pub fn with_authorizer(self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.rebuild(|i| i.authorizer = authorizer)
    }

    /// Check every write with `admission`.
    pub fn with_admission(self, admission: Arc<dyn Admission>) -> Self {
        self.rebuild(|i| i.admission = admission)
    }

    /// Send committed events to `events`.
    pub fn with_events(self, events: Arc<dyn EventSink>) -> Self {
        self.rebuild(|i| i.events = events)
    }

    /// Serve the repositories of proxy-cache projects through `upstream`:
    /// misses are fetched from it and cached as they are served.
    pub fn with_upstream(self, upstream: Arc<dyn Upstream>) -> Self {
        self.rebuild(|i| i.upstream = Some(upstream))
    }

    /// Mount the `/v2` routes.
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        http::configure(cfg, actix_web::web::Data::from(self.inner.clone()));
    }

    /// Delete a tag, or a manifest with every tag on it, exactly as
    /// `DELETE /v2/<name>/manifests/<reference>` does (admission, event and
    /// change in one transaction): the REST API's artifact and tag deletes.
    pub async fn delete(
        &self,
        repository: &wharf_oci::RepositoryName,
        reference: &wharf_oci::Reference,
        actor: seams::Principal,
    ) -> Result<(), RegistryError> {
        http::delete_reference(&self.inner, repository, reference, actor).await
    }

    /// `SELECT 1` against the metadata database.
    pub async fn check_database(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map(|_| ())
    }

    /// The blob store (for the storage health check).
    pub fn store(&self) -> &BlobStore {
        &self.inner.store
    }

    /// Discard upload sessions abandoned for longer than the configured age,
    /// and upload data in the store that no session owns any more. Returns the
    /// number of sessions and orphaned store entries removed.
    pub async fn purge_abandoned_uploads(&self) -> Result<u64, RegistryError> {
        let inner = &self.inner;
        let age = inner.config.upload_purge_after_secs;
        let mut removed = 0;
        for (id, state) in db::uploads::abandoned(&inner.pool, age as i64).await? {
            db::uploads::delete(&inner.pool, id).await?;
            if let Err(e) = inner.store.abort(id, state).await {
                tracing::warn!(upload = %id, error = %e, "could not discard abandoned upload data");
            }
            removed += 1;
        }
        removed += inner
            .store
            .purge_uploads_older_than(Duration::from_secs(age))
            .await?;
        Ok(removed)
    }

    /// Run `purge_abandoned_uploads` every `maintenance_interval_secs` until the
    /// runtime stops. Safe with several replicas: each purge is idempotent.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        let every = Duration::from_secs(self.inner.config.maintenance_interval_secs.max(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                match registry.purge_abandoned_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "purged abandoned uploads"),
                    Err(e) => tracing::warn!(error = %e, "upload purge failed; will retry"),
                }
            }
        })
    }
}
