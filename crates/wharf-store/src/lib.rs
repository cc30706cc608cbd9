//! Blob bytes for Wharf: content-addressed once per instance under
//! `blobs/<alg>/<first two hex>/<hex>`, written by streaming through a hasher,
//! visible only once verified and durable.
//!
//! CONTRACT (the registry codes against exactly this; keep signatures stable):
//!
//! ```ignore
//! let store = BlobStore::from_config(&StorageConfig::Filesystem { root }).await?;
//! store.check().await?;                                   // health: can we list/write?
//! store.stat(&digest).await? -> Option<u64>               // size if the blob exists
//! store.get(&digest, Some(ByteRange{start,end_inclusive})).await? -> BlobBody  // stream
//! store.put_verified(&digest, bytes).await?               // small blobs (manifests): hash-checks, then durable write
//! store.delete(&digest).await?
//!
//! // uploads: state is persisted by the caller (registry) as JSON in Postgres after
//! // every call, so the next call may run in another process.
//! let st = store.begin_upload(upload_id, DigestAlgorithm::Sha256).await?;
//! let st = store.append(upload_id, st, body_stream).await?;   // bytes appended at st.offset
//! let blob = store.finish(upload_id, st, &expected_digest).await?; // Err(DigestMismatch) => nothing visible
//! store.abort(upload_id, st).await?;                          // discard everything of the upload
//! store.purge_uploads_older_than(age).await?                  // sweep orphaned upload data
//! ```

mod config;
mod error;

pub use config::{S3Config, StorageConfig};
pub use error::StoreError;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm};

/// Inclusive byte range, as HTTP `Range: bytes=start-end` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange { pub start: u64, pub end_inclusive: u64 }

/// A blob being read: the stream yields exactly `len` bytes (the range's length or the
/// whole blob); `total_size` is the size of the whole blob.
pub struct BlobBody {
    pub stream: BoxStream<'static, Result<Bytes, StoreError>>,
    pub len: u64,
    pub total_size: u64,
}

/// A finished, verified, durable blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob { pub digest: Digest, pub size: u64 }

/// Resumable state of one upload. Serialize it, keep it, hand it back on the next call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadState {
    /// Bytes accepted so far (the next byte's offset).
    pub offset: u64,
    pub algorithm: String,
    /// DigestHasher::save_state of everything accepted so far (hex or base64 inside JSON is fine).
    pub hash_state: Vec<u8>,
    /// Backend-specific resume data (multipart id, parts, tail length …). Opaque to callers.
    pub backend: serde_json::Value,
}

/// Chunk stream handed to `append` (a request body).
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

#[derive(Clone)]
pub struct BlobStore { /* private */ }

impl BlobStore {
    pub async fn from_config(config: &StorageConfig) -> Result<Self, StoreError> { unimplemented!() }
    /// In-memory store for unit tests.
    pub fn memory() -> Self { unimplemented!() }
    /// Human-readable backend name for logs/health ("filesystem", "s3", "memory").
    pub fn backend_name(&self) -> &'static str { unimplemented!() }
    pub async fn check(&self) -> Result<(), StoreError> { unimplemented!() }
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> { unimplemented!() }
    pub async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody, StoreError> { unimplemented!() }
    pub async fn put_verified(&self, digest: &Digest, bytes: Bytes) -> Result<StoredBlob, StoreError> { unimplemented!() }
    pub async fn delete(&self, digest: &Digest) -> Result<(), StoreError> { unimplemented!() }
    pub async fn begin_upload(&self, id: Uuid, algorithm: DigestAlgorithm) -> Result<UploadState, StoreError> { unimplemented!() }
    pub async fn append(&self, id: Uuid, state: UploadState, body: ByteStream) -> Result<UploadState, StoreError> { unimplemented!() }
    pub async fn finish(&self, id: Uuid, state: UploadState, expected: &Digest) -> Result<StoredBlob, StoreError> { unimplemented!() }
    pub async fn abort(&self, id: Uuid, state: UploadState) -> Result<(), StoreError> { unimplemented!() }
    pub async fn purge_uploads_older_than(&self, age: std::time::Duration) -> Result<u64, StoreError> { unimplemented!() }
}
