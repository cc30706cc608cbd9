//! Blob bytes for Wharf: content-addressed once per instance under
//! `blobs/<alg>/<first two hex>/<hex>`, written by streaming through a hasher,
//! visible only once verified and durable.
//!
//! ```ignore
//! let store = BlobStore::from_config(&StorageConfig::Filesystem { root }).await?;
//! store.check().await?;                                   // health: can we write?
//! store.stat(&digest).await? -> Option<u64>               // size if the blob exists
//! store.get(&digest, Some(ByteRange{start,end_inclusive})).await? -> BlobBody  // stream
//! store.put_verified(&digest, bytes).await?               // small blobs (manifests): hash-checks, then durable write
//! store.delete(&digest).await?
//! store.list_blobs() -> stream of ListedBlob{digest,size,modified}  // garbage collection's sweep
//!
//! // uploads: state is persisted by the caller (registry) as JSON in Postgres after
//! // every call, so the next call may run in another process.
//! let st = store.begin_upload(upload_id, DigestAlgorithm::Sha256).await?;
//! let st = store.append(upload_id, st, body_stream).await?;   // bytes appended at st.offset
//! let blob = store.finish(upload_id, st, &expected_digest).await?; // Err(DigestMismatch) => nothing visible
//! store.abort(upload_id, st).await?;                          // discard everything of the upload
//! store.purge_uploads_older_than(age).await?                  // sweep orphaned upload data
//! ```
//!
//! Two backends sit behind [`BlobStore`]: the local filesystem (`filesystem`
//! module, plain `tokio::fs` with fsync + rename) and object stores (`object`
//! module: S3 multipart uploads, or memory for tests). How an upload resumes
//! across processes is explained in the `upload` module.

mod config;
mod error;
mod filesystem;
mod layout;
mod object;
mod upload;

pub use config::{S3Config, StorageConfig};
pub use error::StoreError;
pub use object::PART_SIZE;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm};

use filesystem::FilesystemBackend;
use object::ObjectBackend;

/// Inclusive byte range, as HTTP `Range: bytes=start-end` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive; past the end of the blob means "to the end".
    pub end_inclusive: u64,
}

/// `(start, len)` of `range` within a blob of `size` bytes; the whole blob when
/// there is no range. An end past the blob is clamped to its last byte.
pub(crate) fn resolve_range(range: Option<ByteRange>, size: u64) -> Result<(u64, u64), StoreError> {
    match range {
        None => Ok((0, size)),
        Some(r) if r.start > r.end_inclusive || r.start >= size => {
            Err(StoreError::RangeNotSatisfiable { size })
        }
        Some(r) => Ok((r.start, r.end_inclusive.min(size - 1) - r.start + 1)),
    }
}

/// A blob being read: the stream yields exactly `len` bytes (the range's length or the
/// whole blob); `total_size` is the size of the whole blob.
pub struct BlobBody {
    /// The bytes, in chunks of at most a few hundred KiB.
    pub stream: BoxStream<'static, Result<Bytes, StoreError>>,
    /// How many bytes `stream` yields.
    pub len: u64,
    /// Size of the whole blob.
    pub total_size: u64,
}

/// A finished, verified, durable blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its digest (the one the caller expected; the content was checked against it).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A blob found by [`BlobStore::list_blobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Its digest, from its key.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (its mtime, or the object's last modification).
    pub modified: std::time::SystemTime,
}

/// Resumable state of one upload. Serialize it, keep it, hand it back on the next call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadState {
    /// Bytes accepted so far (the next byte's offset).
    pub offset: u64,
    /// Digest algorithm of `hash_state` (`sha256` / `sha512`).
    pub algorithm: String,
    /// DigestHasher::save_state of everything accepted so far (a hex string in JSON).
    #[serde(with = "upload::hex_bytes")]
    pub hash_state: Vec<u8>,
    /// Backend-specific resume data (multipart id, parts, tail length …). Opaque to callers.
    pub backend: serde_json::Value,
}

/// Chunk stream handed to `append` (a request body).
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Blob storage of one Wharf instance. Cheap to clone; clones share the backend.
#[derive(Clone)]
pub struct BlobStore {
    backend: Arc<Backend>,
}

enum Backend {
    Filesystem(FilesystemBackend),
    Object(ObjectBackend),
}

impl std::fmt::Debug for BlobStore {
    /// Names the backend only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    fn with(backend: Backend) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    /// Open the configured backend. The filesystem backend creates its
    /// directories; S3 makes no request here (use [`BlobStore::check`]).
    pub async fn from_config(config: &StorageConfig) -> Result<Self, StoreError> {
        let backend = match config {
            StorageConfig::Filesystem { root } => {
                Backend::Filesystem(FilesystemBackend::open(root.clone()).await?)
            }
            StorageConfig::S3(s3) => Backend::Object(ObjectBackend::s3(s3)?),
            StorageConfig::Memory => Backend::Object(ObjectBackend::memory()),
        };
        Ok(Self::with(backend))
    }

    /// In-memory store for unit tests.
    pub fn memory() -> Self {
        Self::with(Backend::Object(ObjectBackend::memory()))
    }

    /// Human-readable backend name for logs/health ("filesystem", "s3", "memory").
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Filesystem(_) => "filesystem",
            Backend::Object(o) => o.name(),
        }
    }

    /// Health check: writes and removes a small probe file/object.
    pub async fn check(&self) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.check().await,
            Backend::Object(b) => b.check().await,
        }
    }

    /// Size of the blob, or `None` if it is not stored.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.stat(digest).await,
            Backend::Object(b) => b.stat(digest).await,
        }
    }

    /// Stream a blob, or the inclusive `range` of it (an end past the blob is
    /// clamped). [`StoreError::NotFound`] if absent,
    /// [`StoreError::RangeNotSatisfiable`] if the range starts past the end or
    /// ends before it starts.
    pub async fn get(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobBody, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.get(digest, range).await,
            Backend::Object(b) => b.get(digest, range).await,
        }
    }

    /// Store a small blob held in memory (a manifest): checks `bytes` hash to
    /// `digest`, then writes durably. Storing an existing blob again is a no-op.
    pub async fn put_verified(
        &self,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<StoredBlob, StoreError> {
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(StoreError::mismatch(digest, &actual));
        }
        match &*self.backend {
            Backend::Filesystem(b) => b.put_verified(digest, bytes).await,
            Backend::Object(b) => b.put_verified(digest, bytes).await,
        }
    }

    /// Remove a blob. Removing a blob that is not there is not an error.
    pub async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.delete(digest).await,
            Backend::Object(b) => b.delete(digest).await,
        }
    }

    /// Every blob in the store, streamed in no particular order (one shard
    /// directory or one listing page in memory at a time). Keys that are not
    /// a blob's (stray files, unknown algorithms) are skipped. Blobs written
    /// or removed while the listing runs may or may not appear.
    pub fn list_blobs(&self) -> BoxStream<'static, Result<ListedBlob, StoreError>> {
        match &*self.backend {
            Backend::Filesystem(b) => b.list_blobs(),
            Backend::Object(b) => b.list_blobs(),
        }
    }

    /// Start an upload hashed with `algorithm`; keep the returned state.
    pub async fn begin_upload(
        &self,
        id: Uuid,
        algorithm: DigestAlgorithm,
    ) -> Result<UploadState, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.begin_upload(id, algorithm).await,
            Backend::Object(b) => Ok(b.begin_upload(algorithm)),
        }
    }

    /// Append `body` at `state.offset` and return the state to keep. On error
    /// nothing of this call counts: the state passed in stays valid and a retry
    /// from it overwrites whatever the failed call wrote.
    pub async fn append(
        &self,
        id: Uuid,
        state: UploadState,
        body: ByteStream,
    ) -> Result<UploadState, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.append(id, state, body).await,
            Backend::Object(b) => b.append(id, state, body).await,
        }
    }

    /// Verify the upload against `expected` and make it the blob of that digest.
    /// On [`StoreError::DigestMismatch`] the upload's data is discarded and
    /// nothing becomes visible; after other errors the same state may be retried.
    pub async fn finish(
        &self,
        id: Uuid,
        state: UploadState,
        expected: &Digest,
    ) -> Result<StoredBlob, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.finish(id, state, expected).await,
            Backend::Object(b) => b.finish(id, state, expected).await,
        }
    }

    /// Discard everything of an upload (data, pending tail, multipart upload).
    /// Aborting an upload that is already gone is not an error.
    pub async fn abort(&self, id: Uuid, state: UploadState) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.abort(id).await,
            Backend::Object(b) => b.abort(id, &state).await,
        }
    }

    /// Remove upload data not touched for `age`; returns how many uploads were
    /// (partly) removed. On object stores this cannot reach multipart uploads
    /// whose state is lost: configure the bucket to abort incomplete multipart
    /// uploads (see docs/storage.md).
    pub async fn purge_uploads_older_than(
        &self,
        age: std::time::Duration,
    ) -> Result<u64, StoreError> {
        match &*self.backend {
            Backend::Filesystem(b) => b.purge_uploads_older_than(age).await,
            Backend::Object(b) => b.purge_uploads_older_than(age).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_and_clamp() {
        let r = |start, end_inclusive| {
            Some(ByteRange {
                start,
                end_inclusive,
            })
        };
        assert_eq!(resolve_range(None, 10).unwrap(), (0, 10));
        assert_eq!(resolve_range(r(0, 0), 10).unwrap(), (0, 1));
        assert_eq!(resolve_range(r(2, 5), 10).unwrap(), (2, 4));
        assert_eq!(resolve_range(r(9, 100), 10).unwrap(), (9, 1));
        for bad in [r(10, 12), r(5, 4), r(0, 0)] {
            let size = if bad == r(0, 0) { 0 } else { 10 };
            assert!(matches!(
                resolve_range(bad, size),
                Err(StoreError::RangeNotSatisfiable { size: s }) if s == size
            ));
        }
    }
}
