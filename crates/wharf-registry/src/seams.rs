//! The registry's seams to the rest of Wharf: who may do what (authorisation),
//! whether a push may land (admission: quota, immutability, read-only projects),
//! and what happened (events). The registry declares them and ships permissive
//! defaults; the RBAC, lifecycle and webhook crates implement them without the
//! registry depending on those crates.

use actix_web::HttpRequest;
use async_trait::async_trait;
use sqlx::PgConnection;
use wharf_oci::{Digest, Reference, RepositoryName};

/// An action on a repository, as Docker token scopes name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// The scope word: `pull`, `push`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request needs: actions on a repository, or the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `repository:<name>:<actions>`
    Repository {
        name: RepositoryName,
        actions: Vec<Action>,
    },
    /// `registry:catalog:*`
    Catalog,
    /// `GET /v2/`: only proves the caller's credentials are acceptable.
    Base,
}

/// The caller as the authoriser identified them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// `None` for anonymous access.
    pub name: Option<String>,
    /// Where the request came from (the client, behind trusted proxies), for
    /// the audit log.
    pub client_addr: Option<String>,
}

/// Why an access was refused; mapped to `UNAUTHORIZED`/`DENIED`/`NAME_UNKNOWN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No or bad credentials: 401 with this `WWW-Authenticate` challenge.
    Unauthorized { challenge: String, message: String },
    /// Authenticated, but not allowed: 403.
    Denied { message: String },
    /// The repository must not be acknowledged to this caller: 404.
    NameUnknown,
    /// Too many failed logins from this client or for this account: 429.
    TooManyRequests {
        retry_after_secs: u64,
        message: String,
    },
    /// The decision could not be made (the database is unreachable): 503,
    /// so clients retry instead of asking for new credentials. The cause is
    /// for the log, not the client.
    Unavailable { cause: String },
}

/// Decides whether the caller (identified from the request: its
/// `Authorization` header, its address) may perform every access listed.
/// Called before a handler touches anything.
#[async_trait(?Send)]
pub trait Authorizer: Send + Sync + 'static {
    async fn authorize(&self, req: &HttpRequest, access: &[Access])
    -> Result<Principal, AuthError>;
}

/// Lets everybody do everything: the registry core before the RBAC crate plugs in,
/// and a development registry on a trusted network.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

#[async_trait(?Send)]
impl Authorizer for AllowAll {
    async fn authorize(&self, req: &HttpRequest, _: &[Access]) -> Result<Principal, AuthError> {
        Ok(Principal {
            name: None,
            client_addr: req.peer_addr().map(|a| a.ip().to_string()),
        })
    }
}

/// A manifest about to be stored, as admission sees it.
#[derive(Debug, Clone)]
pub struct ManifestPush<'a> {
    pub repository: &'a RepositoryName,
    /// The repository's row id (created by this push if it is new).
    pub repository_id: i64,
    pub digest: &'a Digest,
    /// The tags this push sets (none for a push by digest without `?tag=`).
    pub tags: &'a [&'a str],
    pub media_type: &'a str,
    /// Size of the manifest itself (it is stored as a blob too).
    pub size: u64,
    /// The blobs it references (config and layers): digest and size.
    pub blobs: &'a [(String, u64)],
    /// Child manifests of an index.
    pub children: &'a [String],
    /// The manifest this one refers to (`subject`), if any.
    pub subject: Option<&'a Digest>,
}

/// A tag or manifest about to be deleted. `digest` is set for a manifest
/// (every tag on it goes too); `tag` alone for a tag.
#[derive(Debug, Clone)]
pub struct Deletion<'a> {
    pub repository: &'a RepositoryName,
    pub repository_id: i64,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a Digest>,
}

/// Why admission refused a write.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// Refused by policy (quota, immutable tag, read-only project): 403
    /// `DENIED` with this message, which says what to do.
    #[error("{message}")]
    Denied { message: String },
    /// The policy could not be checked.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Policy checks on writes. The manifest and delete checks run inside the
/// transaction that makes the change, after validation and before anything
/// is written, so what admission records (quota usage) commits or rolls back
/// with the change, and concurrent changes serialise on the rows it locks.
#[async_trait]
pub trait Admission: Send + Sync + 'static {
    /// May a blob upload start in this repository?
    async fn admit_blob_upload(&self, repository: &RepositoryName) -> Result<(), AdmissionError>;
    /// May this manifest (and its tags) be stored?
    async fn admit_manifest(
        &self,
        tx: &mut PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError>;
    /// May this tag or manifest be deleted?
    async fn admit_delete(
        &self,
        tx: &mut PgConnection,
        deletion: &Deletion<'_>,
    ) -> Result<(), AdmissionError>;
    /// May the proxy cache store this manifest, fetched from the upstream of
    /// a proxy-cache project, where pushes are refused? Quota still applies.
    /// `push.blobs` carries the sizes the manifest declares: its layers
    /// arrive later, as clients pull them. By default the same check as a push.
    async fn admit_cached_manifest(
        &self,
        tx: &mut PgConnection,
        push: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        self.admit_manifest(tx, push).await
    }
}

/// Admits every write.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdmitAll;

#[async_trait]
impl Admission for AdmitAll {
    async fn admit_blob_upload(&self, _: &RepositoryName) -> Result<(), AdmissionError> {
        Ok(())
    }
    async fn admit_manifest(
        &self,
        _: &mut PgConnection,
        _: &ManifestPush<'_>,
    ) -> Result<(), AdmissionError> {
        Ok(())
    }
    async fn admit_delete(
        &self,
        _: &mut PgConnection,
        _: &Deletion<'_>,
    ) -> Result<(), AdmissionError> {
        Ok(())
    }
}

/// A manifest as an upstream registry served it.
#[derive(Debug, Clone)]
pub struct UpstreamManifest {
    /// The exact bytes (their digest is the manifest's).
    pub bytes: bytes::Bytes,
    pub media_type: String,
}

/// A blob being streamed from an upstream registry.
pub struct UpstreamBlob {
    /// `Content-Length`, when the upstream sent one.
    pub size: Option<u64>,
    pub stream: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
}

/// Why the upstream could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Down, refusing our credentials, or answering errors: the cache serves
    /// what it holds. The message names the upstream and says what failed.
    #[error("{0}")]
    Unavailable(String),
    /// A local failure (the database) while finding the upstream.
    #[error("{0}")]
    Internal(String),
}

/// Where a proxy-cache repository's content comes from: one repository of
/// one upstream registry.
#[async_trait]
pub trait UpstreamSource: Send + Sync {
    /// The upstream registry and repository, for messages and logs.
    fn describe(&self) -> String;
    /// The digest `reference` resolves to upstream; `None` if it has none.
    async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, UpstreamError>;
    /// The manifest `reference`, in the media type it was pushed in.
    async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<UpstreamManifest>, UpstreamError>;
    /// The blob's bytes as they arrive.
    async fn get_blob(&self, digest: &Digest) -> Result<Option<UpstreamBlob>, UpstreamError>;
    /// The upstream's referrers index for `digest` (its exact body), `None`
    /// when it has no referrers API.
    async fn referrers(&self, digest: &Digest) -> Result<Option<bytes::Bytes>, UpstreamError>;
}

/// Pull-through caching: which repositories mirror an upstream, and how long
/// a cached tag is trusted before the upstream is asked again.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// The upstream of `repository` if its project is a proxy cache.
    async fn source(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<std::sync::Arc<dyn UpstreamSource>>, UpstreamError>;
    /// A cached tag younger than this is served without asking the upstream.
    fn recheck_interval(&self) -> std::time::Duration;
}

/// Something that happened in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    ManifestPushed {
        repository: RepositoryName,
        digest: Digest,
        tag: Option<String>,
        media_type: String,
        size: u64,
        actor: Principal,
    },
    ManifestPulled {
        repository: RepositoryName,
        digest: Digest,
        tag: Option<String>,
        actor: Principal,
    },
    ManifestDeleted {
        repository: RepositoryName,
        digest: Digest,
        actor: Principal,
    },
    TagDeleted {
        repository: RepositoryName,
        tag: String,
        actor: Principal,
    },
}

/// Receives the registry's events.
///
/// Changes (pushes, deletes) are handed over inside the database transaction
/// that makes them, so what the sink writes there (an audit entry, an outbox
/// row) commits or rolls back with the change. Pulls change nothing and are
/// on the hot path: they are handed over without a transaction and the sink
/// must not block (queue and batch them).
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// A push or delete, inside its transaction.
    async fn record_change(&self, tx: &mut PgConnection, event: &RegistryEvent)
    -> sqlx::Result<()>;
    /// A pull, after it was served.
    fn record_pull(&self, event: RegistryEvent);
}

/// Writes every event to the structured log (target `wharf::events`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

#[async_trait]
impl EventSink for LogEvents {
    async fn record_change(&self, _: &mut PgConnection, event: &RegistryEvent) -> sqlx::Result<()> {
        tracing::info!(target: "wharf::events", ?event, "registry event");
        Ok(())
    }

    fn record_pull(&self, event: RegistryEvent) {
        // Pulls are the bulk of traffic: keep them out of the default log level.
        tracing::debug!(target: "wharf::events", ?event, "registry event");
    }
}
