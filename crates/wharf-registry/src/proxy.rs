//! Pull-through caching for proxy-cache projects (see `seams::Upstream`).
//!
//! Manifests: a local tag (pushed here, `upstream_checked_at` NULL) and a
//! manifest found by digest are served as they are. A cached tag younger than
//! the re-check interval is served too; an older one is compared with the
//! upstream by `HEAD` and re-fetched only when it moved there. A miss is
//! fetched, stored with its tag in one transaction (admission charges the
//! project's quota with the sizes the manifest declares) and served. Whenever
//! the upstream cannot answer, whatever the cache holds is served; only a
//! miss with the upstream down is an error, naming the upstream.
//!
//! Blobs: a miss is streamed from the upstream to the client and, through a
//! bounded channel, into a store upload at the same time (one chunk in
//! memory per side). The blob is published and linked only once the whole
//! body hashed to its digest; a broken or wrong body is discarded. The last
//! chunk reaches the client only after that commit, so a client that got the
//! whole blob can pull it from the cache the moment it asks again. A client
//! that goes away does not stop the fill: the next one gets it cached.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header;
use bytes::Bytes;
use futures_util::StreamExt as _;
use sqlx::PgPool;
use tokio::sync::mpsc;
use wharf_oci::{Digest, DigestAlgorithm, ErrorCode, ParsedManifest, Reference, RepositoryName};
use wharf_store::BlobStore;

use crate::Inner;
use crate::db;
use crate::db::manifests::StoredManifest;
use crate::error::{RegistryError, Result};
use crate::seams::{ManifestPush, UpstreamBlob, UpstreamError, UpstreamManifest, UpstreamSource};

/// Chunks in flight between the upstream reader and each of its consumers.
const CHANNEL_DEPTH: usize = 4;

fn internal(e: UpstreamError) -> RegistryError {
    RegistryError::Internal(e.to_string())
}

/// The upstream of `name` when it is in a proxy-cache project.
async fn source(reg: &Inner, name: &RepositoryName) -> Result<Option<Arc<dyn UpstreamSource>>> {
    match &reg.upstream {
        Some(upstream) => upstream.source(name).await.map_err(internal),
        None => Ok(None),
    }
}

/// The manifest to serve for `reference`, given what the cache holds
/// (`local`): see the module comment. `Ok(None)` means unknown here and not
/// a proxied repository.
pub(crate) async fn manifest(
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    local: Option<StoredManifest>,
) -> Result<Option<StoredManifest>> {
    let Some(upstream) = &reg.upstream else {
        return Ok(local);
    };
    if let Some(cached) = &local {
        let Some(checked) = cached.upstream_checked_at else {
            return Ok(local);
        };
        let age = (chrono::Utc::now() - checked).to_std().unwrap_or_default();
        if age < upstream.recheck_interval() {
            return Ok(local);
        }
    }
    let Some(src) = source(reg, name).await? else {
        return Ok(local);
    };
    if let (Some(cached), Reference::Tag(tag)) = (&local, reference) {
        match src.head_manifest(reference).await {
            Ok(Some(digest)) if digest.to_string() == cached.digest => {
                db::tags::mark_checked(&reg.pool, name, tag.as_str()).await?;
                return Ok(local);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                // Kept: the cache serves what it was given until retention
                // or an administrator removes it.
                tracing::info!(repository = %name, %tag, upstream = %src.describe(),
                    "cached tag is gone upstream; serving the cached manifest");
                db::tags::mark_checked(&reg.pool, name, tag.as_str()).await?;
                return Ok(local);
            }
            Err(UpstreamError::Unavailable(cause)) => {
                tracing::warn!(repository = %name, %tag, %cause,
                    "upstream unavailable; serving the cached manifest");
                return Ok(local);
            }
            Err(e) => return Err(internal(e)),
        }
    }
    match src.get_manifest(reference).await {
        Ok(Some(fetched)) => cache_manifest(reg, name, reference, fetched)
            .await
            .map(Some),
        Ok(None) if local.is_some() => Ok(local),
        Ok(None) => Err(RegistryError::with_detail(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest unknown to this proxy cache and to its upstream {}",
                src.describe()
            ),
            serde_json::json!({ "reference": reference.to_string() }),
        )),
        Err(UpstreamError::Unavailable(cause)) => match local {
            Some(cached) => {
                tracing::warn!(repository = %name, %cause,
                    "upstream unavailable; serving the cached manifest");
                Ok(Some(cached))
            }
            None => Err(RegistryError::with_detail(
                ErrorCode::ManifestUnknown,
                format!(
                    "manifest not in this proxy cache, and its upstream {} cannot be \
                     reached to fetch it: {cause}",
                    src.describe()
                ),
                serde_json::json!({ "reference": reference.to_string() }),
            )),
        },
        Err(e) => Err(internal(e)),
    }
}

/// Store a manifest fetched from the upstream, with its tag when fetched by
/// one, in one transaction; the result as a pull serves it.
async fn cache_manifest(
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    fetched: UpstreamManifest,
) -> Result<StoredManifest> {
    let bytes = fetched.bytes;
    let manifest = ParsedManifest::parse(Some(&fetched.media_type), &bytes).map_err(|e| {
        RegistryError::with_detail(
            ErrorCode::ManifestInvalid,
            "the upstream served a manifest this registry cannot cache",
            serde_json::json!({ "reason": e.to_string() }),
        )
    })?;
    let digest = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if actual != *expected {
                return Err(RegistryError::with_detail(
                    ErrorCode::DigestInvalid,
                    "the upstream served a manifest that does not match the digest asked for",
                    serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() }),
                ));
            }
            actual
        }
        Reference::Tag(_) => Digest::of(DigestAlgorithm::Sha256, &bytes),
    };
    let blobs: Vec<(String, u64)> = manifest
        .blob_references()
        .map(|d| (d.digest.to_string(), d.size))
        .collect();
    let children: Vec<String> = manifest
        .manifests
        .iter()
        .map(|d| d.digest.to_string())
        .collect();
    let tags: Vec<&str> = match reference {
        Reference::Tag(t) => vec![t.as_str()],
        Reference::Digest(_) => Vec::new(),
    };

    let mut tx = reg.pool.begin().await?;
    let mut locked: Vec<String> = blobs.iter().map(|(d, _)| d.clone()).collect();
    locked.push(digest.to_string());
    locked.extend(children.iter().cloned());
    db::blob_locks::share(&mut tx, &locked).await?;
    let repository_id = db::repositories::ensure(&mut tx, name).await?;
    reg.admission
        .admit_cached_manifest(
            &mut tx,
            &ManifestPush {
                repository: name,
                repository_id,
                digest: &digest,
                tags: &tags,
                media_type: &manifest.media_type,
                size: bytes.len() as u64,
                blobs: &blobs,
                children: &children,
                subject: manifest.subject.as_ref().map(|s| &s.digest),
            },
        )
        .await?;
    reg.store.put_verified(&digest, bytes.clone()).await?;
    db::blobs::record_and_link(&mut tx, repository_id, &digest, bytes.len() as u64).await?;
    // Layers another repository already cached are served from here at once.
    let blob_digests: Vec<String> = blobs.iter().map(|(d, _)| d.clone()).collect();
    db::blobs::link_present(&mut tx, repository_id, &blob_digests).await?;
    let manifest_id =
        db::manifests::insert(&mut tx, repository_id, &digest, &manifest, &bytes).await?;
    for tag in &tags {
        db::tags::upsert_cached(&mut tx, repository_id, tag, manifest_id).await?;
    }
    tx.commit().await?;
    tracing::info!(repository = %name, %reference, %digest, "cached a manifest from the upstream");
    Ok(StoredManifest {
        digest: digest.to_string(),
        media_type: manifest.media_type,
        content: bytes.to_vec(),
        upstream_checked_at: Some(chrono::Utc::now()),
    })
}

/// What a blob miss in a proxied repository came to.
pub(crate) enum BlobMiss {
    /// Not proxied: unknown.
    NotProxied,
    /// The instance had it (cached through another repository); it is now
    /// linked here too, serve it locally.
    Linked,
    /// The answer, streamed from the upstream.
    Response(HttpResponse),
}

fn blob_error(digest: &Digest, message: String) -> RegistryError {
    RegistryError::with_detail(
        ErrorCode::BlobUnknown,
        message,
        serde_json::json!({ "digest": digest.to_string() }),
    )
}

/// A `GET`/`HEAD` for a blob `name` does not link.
pub(crate) async fn blob(
    reg: &Inner,
    name: &RepositoryName,
    digest: &Digest,
    head: bool,
) -> Result<BlobMiss> {
    if reg.upstream.is_none() {
        return Ok(BlobMiss::NotProxied);
    }
    if db::blobs::referenced_elsewhere(&reg.pool, name, digest)
        .await?
        .is_some()
    {
        let mut tx = reg.pool.begin().await?;
        db::blob_locks::share(&mut tx, &[digest.to_string()]).await?;
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(size) = size {
            let repository_id = db::repositories::ensure(&mut tx, name).await?;
            db::blobs::record_and_link(&mut tx, repository_id, digest, size as u64).await?;
            tx.commit().await?;
            return Ok(BlobMiss::Linked);
        }
    }
    let Some(src) = source(reg, name).await? else {
        return Ok(BlobMiss::NotProxied);
    };
    let blob = match src.get_blob(digest).await {
        Ok(Some(blob)) => blob,
        Ok(None) => {
            return Err(blob_error(
                digest,
                format!(
                    "blob unknown to this proxy cache and to its upstream {}",
                    src.describe()
                ),
            ));
        }
        Err(UpstreamError::Unavailable(cause)) => {
            return Err(blob_error(
                digest,
                format!(
                    "blob not in this proxy cache, and its upstream {} cannot be reached to \
                     fetch it: {cause}",
                    src.describe()
                ),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header(("Docker-Content-Digest", digest.to_string()))
        .insert_header((header::ETAG, format!("\"{digest}\"")));
    if head {
        // Only the size was wanted; dropping the body closes the upstream
        // connection without caching anything.
        let len = blob.size.unwrap_or(0);
        return Ok(BlobMiss::Response(resp.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<Bytes, RegistryError>>(),
        ))));
    }
    let size = blob.size;
    let body = tee(
        reg.pool.clone(),
        reg.store.clone(),
        name.clone(),
        digest.clone(),
        blob,
    );
    Ok(BlobMiss::Response(match size {
        Some(len) => resp.body(SizedStream::new(len, body)),
        None => resp.body(BodyStream::new(body)),
    }))
}

type ClientChunk = std::result::Result<Bytes, std::io::Error>;

/// Stream `blob` to the returned body and into the store at once; see the
/// module comment for the guarantees.
fn tee(
    pool: PgPool,
    store: BlobStore,
    name: RepositoryName,
    digest: Digest,
    blob: UpstreamBlob,
) -> impl futures_util::Stream<Item = ClientChunk> + 'static {
    let (client_tx, mut client_rx) = mpsc::channel::<ClientChunk>(CHANNEL_DEPTH);
    tokio::spawn(async move {
        if let Err(e) = fill(&pool, &store, &name, &digest, blob, client_tx).await {
            tracing::warn!(repository = %name, %digest, error = %e,
                "could not cache a blob from the upstream; nothing was kept");
        }
    });
    futures_util::stream::poll_fn(move |cx| client_rx.poll_recv(cx))
}

async fn fill(
    pool: &PgPool,
    store: &BlobStore,
    name: &RepositoryName,
    digest: &Digest,
    blob: UpstreamBlob,
    client_tx: mpsc::Sender<ClientChunk>,
) -> Result<()> {
    let id = uuid::Uuid::new_v4();
    let state = match store.begin_upload(id, digest.algorithm()).await {
        Ok(state) => state,
        Err(e) => {
            let _ = client_tx
                .send(Err(std::io::Error::other("cache unavailable")))
                .await;
            return Err(e.into());
        }
    };
    let (store_tx, mut store_rx) = mpsc::channel::<ClientChunk>(CHANNEL_DEPTH);
    let store_body = futures_util::stream::poll_fn(move |cx| store_rx.poll_recv(cx)).boxed();
    let append = store.append(id, state.clone(), store_body);
    let expected = blob.size;
    let pump = async move {
        let mut client = Some(client_tx);
        let mut held: Option<Bytes> = None;
        let mut total: u64 = 0;
        let mut upstream = blob.stream;
        let failure = loop {
            match upstream.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    if expected.is_some_and(|len| total > len) {
                        break Some("the upstream sent more bytes than it announced".to_owned());
                    }
                    if store_tx.send(Ok(chunk.clone())).await.is_err() {
                        break Some("the store stopped accepting the blob".to_owned());
                    }
                    if let Some(previous) = held.replace(chunk)
                        && let Some(tx) = &client
                        && tx.send(Ok(previous)).await.is_err()
                    {
                        client = None;
                    }
                }
                Some(Err(e)) => break Some(format!("reading from the upstream failed: {e}")),
                None if expected.is_some_and(|len| total != len) => {
                    break Some("the upstream closed the blob early".to_owned());
                }
                None => break None,
            }
        };
        if let Some(reason) = &failure {
            // Makes the store's append fail, so nothing of it counts.
            let _ = store_tx
                .send(Err(std::io::Error::other(reason.clone())))
                .await;
        }
        drop(store_tx);
        (failure, client, held)
    };
    let (appended, (failure, client, held)) = tokio::join!(append, pump);
    let fail_client = |client: Option<mpsc::Sender<ClientChunk>>, why: &str| {
        let why = why.to_owned();
        async move {
            if let Some(tx) = client {
                let _ = tx.send(Err(std::io::Error::other(why))).await;
            }
        }
    };
    if let Some(reason) = failure {
        discard(store, id, state).await;
        fail_client(client, &reason).await;
        return Err(RegistryError::Internal(reason));
    }
    let state = match appended {
        Ok(state) => state,
        Err(e) => {
            discard(store, id, state).await;
            fail_client(client, "the blob could not be cached").await;
            return Err(e.into());
        }
    };
    match publish(pool, store, name, digest, id, state.clone()).await {
        Ok(()) => {
            if let (Some(tx), Some(last)) = (client, held) {
                let _ = tx.send(Ok(last)).await;
            }
            tracing::info!(repository = %name, %digest, "cached a blob from the upstream");
            Ok(())
        }
        Err(e) => {
            if !matches!(&e, RegistryError::Distribution(_)) {
                discard(store, id, state).await;
            }
            fail_client(client, "the upstream's blob did not match its digest").await;
            Err(e)
        }
    }
}

/// Verify and publish the filled upload, link it, commit; under the blob
/// lock like every publication (garbage collection cannot slip in between).
async fn publish(
    pool: &PgPool,
    store: &BlobStore,
    name: &RepositoryName,
    digest: &Digest,
    id: uuid::Uuid,
    state: wharf_store::UploadState,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    db::blob_locks::share(&mut tx, &[digest.to_string()]).await?;
    let blob = store.finish(id, state, digest).await?;
    let repository_id = db::repositories::ensure(&mut tx, name).await?;
    db::blobs::record_and_link(&mut tx, repository_id, &blob.digest, blob.size).await?;
    tx.commit().await?;
    Ok(())
}

async fn discard(store: &BlobStore, id: uuid::Uuid, state: wharf_store::UploadState) {
    if let Err(e) = store.abort(id, state).await {
        tracing::warn!(upload = %id, error = %e, "could not discard a partial cache fill; the purge will retry");
    }
}

/// The referrers index of `digest` from the upstream of a proxied `name`,
/// when the upstream has the API and answers; `None` otherwise (the local
/// referrers are served). The referrers themselves are fetched by digest,
/// like any manifest, when a client asks for them.
pub(crate) async fn referrers(
    reg: &Inner,
    name: &RepositoryName,
    digest: &Digest,
) -> Result<Option<Bytes>> {
    let Some(src) = source(reg, name).await? else {
        return Ok(None);
    };
    match src.referrers(digest).await {
        Ok(index) => Ok(index),
        Err(UpstreamError::Unavailable(cause)) => {
            tracing::warn!(repository = %name, %cause, "upstream unavailable; serving the cached referrers");
            Ok(None)
        }
        Err(e) => Err(internal(e)),
    }
}
