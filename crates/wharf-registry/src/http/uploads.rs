//! Blob uploads: monolithic (`POST ?digest=`), resumable sessions with streamed
//! or chunked `PATCH`es, the closing `PUT ?digest=`, status and cancel, and
//! cross-repository mounts.
//!
//! Every `PATCH`/`PUT` takes the session's lease in PostgreSQL, appends through
//! the store (which keeps the running hash in the session state), then saves the
//! new state and releases the lease. The state is only saved when the append
//! fully succeeded, so a broken or dishonest request leaves the session where it
//! was and the client may retry from the `Range` it is told.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm, ErrorCode, RepositoryName};
use wharf_store::{StoreError, StoredBlob, UploadState};

use super::{authorize, body, parse_digest, query_param, repo_access};
use crate::Inner;
use crate::db;
use crate::db::uploads::Lease;
use crate::error::{RegistryError, Result};
use crate::seams::Action;

fn upload_location(name: &RepositoryName, id: Uuid) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range` of an upload: inclusive end of the data received so far.
fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn upload_unknown() -> RegistryError {
    RegistryError::code(
        ErrorCode::BlobUploadUnknown,
        "blob upload unknown to registry",
    )
}

fn blob_created(name: &RepositoryName, digest: &Digest) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v2/{name}/blobs/{digest}")))
        .insert_header(("Docker-Content-Digest", digest.to_string()))
        .finish()
}

fn upload_accepted(
    status: actix_web::http::StatusCode,
    name: &RepositoryName,
    id: Uuid,
    offset: u64,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, upload_location(name, id)))
        .insert_header((header::RANGE, upload_range(offset)))
        .insert_header(("Docker-Upload-UUID", id.to_string()))
        .finish()
}

fn out_of_order(name: &RepositoryName, id: Uuid, offset: u64) -> RegistryError {
    RegistryError::RangeNotSatisfiable {
        location: upload_location(name, id),
        upload_id: id.to_string(),
        range: upload_range(offset),
    }
}

/// Record a finished blob in the repository.
/// Begin the transaction that makes `digest` reachable in a repository. It
/// holds the digest's blob lock (see `db::blob_locks`) so garbage collection
/// cannot delete the bytes between their publication and the commit that
/// records them.
async fn begin_publication(
    reg: &Inner,
    digest: &Digest,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = reg.pool.begin().await?;
    db::blob_locks::share(&mut tx, &[digest.to_string()]).await?;
    Ok(tx)
}

/// Record a just-published blob, link it to the repository, end the upload
/// session (if any) and commit.
async fn link_blob(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    name: &RepositoryName,
    blob: &StoredBlob,
    upload: Option<Uuid>,
) -> Result<()> {
    let repository_id = db::repositories::ensure(&mut tx, name).await?;
    db::blobs::record_and_link(&mut tx, repository_id, &blob.digest, blob.size).await?;
    if let Some(id) = upload {
        db::uploads::delete(&mut *tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// True when the request may carry body bytes.
fn has_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        Some(len) => len.trim() != "0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `Content-Range: <start>-<end>` of a chunk (a `bytes ` or `bytes=` prefix is tolerated).
fn content_range(req: &HttpRequest) -> Result<Option<(u64, u64)>> {
    let Some(value) = req.headers().get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        RegistryError::code(
            ErrorCode::BlobUploadInvalid,
            "Content-Range must be <start>-<end>",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text
        .strip_prefix("bytes")
        .map(|t| t.trim_start_matches([' ', '=']))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (a, b) = text.split_once('-').ok_or_else(invalid)?;
    let (a, b) = (
        a.trim().parse::<u64>().map_err(|_| invalid())?,
        b.trim().parse::<u64>().map_err(|_| invalid())?,
    );
    if b < a {
        return Err(invalid());
    }
    Ok(Some((a, b)))
}

pub async fn start(
    req: &HttpRequest,
    payload: web::Payload,
    reg: &Inner,
    name: &RepositoryName,
) -> Result<HttpResponse> {
    reg.admission.admit_blob_upload(name).await?;
    if let Some(mount) = query_param(req, "mount") {
        let digest = parse_digest(&mount)?;
        if let Some(blob) = mountable(req, reg, &digest).await? {
            let mut tx = begin_publication(reg, &digest).await?;
            // Checked again under the lock: garbage collection may have
            // taken the blob since.
            if db::blobs::exists(&mut tx, &digest).await? {
                link_blob(tx, name, &blob, None).await?;
                return Ok(blob_created(name, &digest));
            }
        }
        // Not mountable (unknown, or not readable by this caller): a normal
        // upload session, as the spec requires — never a 404.
    }
    if let Some(value) = query_param(req, "digest") {
        let digest = parse_digest(&value)?;
        let id = Uuid::new_v4();
        let state = reg.store.begin_upload(id, digest.algorithm()).await?;
        let state = append_all(reg, id, state, body::stream(payload)).await?;
        let tx = begin_publication(reg, &digest).await?;
        let blob = finish_or_discard(reg, id, state, &digest).await?;
        link_blob(tx, name, &blob, None).await?;
        return Ok(blob_created(name, &digest));
    }
    let algorithm = match query_param(req, "digest-algorithm") {
        Some(a) => DigestAlgorithm::parse(&a).ok_or_else(|| {
            RegistryError::code(
                ErrorCode::DigestInvalid,
                format!("unsupported digest algorithm {a:?}; use sha256 or sha512"),
            )
        })?,
        None => DigestAlgorithm::Sha256,
    };
    let id = Uuid::new_v4();
    let state = reg.store.begin_upload(id, algorithm).await?;
    let repository_id = {
        let mut conn = reg.pool.acquire().await?;
        db::repositories::ensure(&mut conn, name).await?
    };
    db::uploads::create(&reg.pool, id, repository_id, &state).await?;
    Ok(upload_accepted(
        actix_web::http::StatusCode::ACCEPTED,
        name,
        id,
        0,
    ))
}

/// The blob behind `?mount=<digest>&from=<repo>` if the caller may read it there.
async fn mountable(req: &HttpRequest, reg: &Inner, digest: &Digest) -> Result<Option<StoredBlob>> {
    let Some(from) = query_param(req, "from") else {
        return Ok(None);
    };
    let Ok(from) = RepositoryName::parse(&from) else {
        return Ok(None);
    };
    if authorize(req, reg, repo_access(&from, &[Action::Pull]))
        .await
        .is_err()
    {
        return Ok(None);
    }
    Ok(db::blobs::linked_size(&reg.pool, &from, digest)
        .await?
        .map(|size| StoredBlob {
            digest: digest.clone(),
            size,
        }))
}

/// Append a whole body to a fresh upload; on failure the store's data for
/// the upload is discarded.
async fn append_all(
    reg: &Inner,
    id: Uuid,
    state: UploadState,
    body: wharf_store::ByteStream,
) -> Result<UploadState> {
    match reg.store.append(id, state.clone(), body).await {
        Ok(state) => Ok(state),
        Err(e) => {
            discard(reg, id, state).await;
            Err(e.into())
        }
    }
}

/// Verify and publish a fresh upload; on failure its data is discarded.
async fn finish_or_discard(
    reg: &Inner,
    id: Uuid,
    state: UploadState,
    digest: &Digest,
) -> Result<StoredBlob> {
    match reg.store.finish(id, state.clone(), digest).await {
        Ok(blob) => Ok(blob),
        Err(e) => {
            if !matches!(e, StoreError::DigestMismatch { .. }) {
                discard(reg, id, state).await;
            }
            Err(e.into())
        }
    }
}

async fn discard(reg: &Inner, id: Uuid, state: UploadState) {
    if let Err(e) = reg.store.abort(id, state).await {
        tracing::warn!(upload = %id, error = %e, "could not discard upload data; the purge will retry");
    }
}

/// Take the session for this request, or say why not.
async fn take(reg: &Inner, name: &RepositoryName, id: Uuid) -> Result<UploadState> {
    match db::uploads::lease(&reg.pool, name, id).await? {
        Lease::Acquired(state) => Ok(state),
        Lease::Busy(state) => Err(out_of_order(name, id, state.offset)),
        Lease::Unknown => Err(upload_unknown()),
    }
}

/// Append this request's body (if any) at the session's offset, checking the
/// chunk's declared range. The lease is released on failure.
async fn append_chunk(
    req: &HttpRequest,
    payload: web::Payload,
    reg: &Inner,
    name: &RepositoryName,
    id: Uuid,
    state: UploadState,
) -> Result<UploadState> {
    let declared = match content_range(req) {
        Ok(r) => r,
        Err(e) => {
            db::uploads::release(&reg.pool, id).await?;
            return Err(e);
        }
    };
    if let Some((start, end)) = declared {
        let len_mismatch = content_length(req).is_some_and(|len| len != end - start + 1);
        if start != state.offset || len_mismatch {
            db::uploads::release(&reg.pool, id).await?;
            return Err(out_of_order(name, id, state.offset));
        }
    }
    if !has_body(req) {
        return Ok(state);
    }
    let before = state.offset;
    match reg.store.append(id, state, body::stream(payload)).await {
        Ok(next) => {
            if let Some((_, end)) = declared
                && next.offset != end + 1
            {
                // The body did not match its Content-Range: keep the old state.
                db::uploads::release(&reg.pool, id).await?;
                return Err(out_of_order(name, id, before));
            }
            Ok(next)
        }
        Err(e) => {
            db::uploads::release(&reg.pool, id).await?;
            Err(e.into())
        }
    }
}

pub async fn patch(
    req: &HttpRequest,
    payload: web::Payload,
    reg: &Inner,
    name: &RepositoryName,
    id: Uuid,
) -> Result<HttpResponse> {
    let state = take(reg, name, id).await?;
    let state = append_chunk(req, payload, reg, name, id, state).await?;
    db::uploads::save_and_release(&reg.pool, id, &state).await?;
    Ok(upload_accepted(
        actix_web::http::StatusCode::ACCEPTED,
        name,
        id,
        state.offset,
    ))
}

pub async fn put(
    req: &HttpRequest,
    payload: web::Payload,
    reg: &Inner,
    name: &RepositoryName,
    id: Uuid,
) -> Result<HttpResponse> {
    let Some(value) = query_param(req, "digest") else {
        return Err(RegistryError::code(
            ErrorCode::DigestInvalid,
            "the digest query parameter is required to close an upload",
        ));
    };
    let digest = parse_digest(&value)?;
    let state = take(reg, name, id).await?;
    let state = append_chunk(req, payload, reg, name, id, state).await?;
    let tx = match begin_publication(reg, &digest).await {
        Ok(tx) => tx,
        Err(e) => {
            db::uploads::release(&reg.pool, id).await?;
            return Err(e);
        }
    };
    match reg.store.finish(id, state.clone(), &digest).await {
        Ok(blob) => {
            link_blob(tx, name, &blob, Some(id)).await?;
            Ok(blob_created(name, &digest))
        }
        Err(e @ StoreError::DigestMismatch { .. }) => {
            drop(tx);
            // The store discarded the data; the session is over.
            db::uploads::delete(&reg.pool, id).await?;
            Err(e.into())
        }
        Err(e) => {
            drop(tx);
            db::uploads::save_and_release(&reg.pool, id, &state).await?;
            Err(e.into())
        }
    }
}

pub async fn status(reg: &Inner, name: &RepositoryName, id: Uuid) -> Result<HttpResponse> {
    let state = db::uploads::get(&reg.pool, name, id)
        .await?
        .ok_or_else(upload_unknown)?;
    Ok(upload_accepted(
        actix_web::http::StatusCode::NO_CONTENT,
        name,
        id,
        state.offset,
    ))
}

pub async fn cancel(reg: &Inner, name: &RepositoryName, id: Uuid) -> Result<HttpResponse> {
    let state = db::uploads::get(&reg.pool, name, id)
        .await?
        .ok_or_else(upload_unknown)?;
    db::uploads::delete(&reg.pool, id).await?;
    discard(reg, id, state).await;
    Ok(HttpResponse::NoContent().finish())
}
