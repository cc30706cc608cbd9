//! The one error type of this crate.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No blob under that digest.
    #[error("blob not found")]
    NotFound,
    /// The uploaded bytes hash to `actual`, not `expected`; nothing was made visible.
    #[error("content digest {actual} does not match the expected {expected}")]
    DigestMismatch {
        /// The digest the caller asked for.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// The range starts past the end of the blob or ends before it starts.
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the whole blob.
        size: u64,
    },
    /// The upload state cannot be used: corrupt, from another backend, or its data
    /// is gone (aborted, purged, or lost).
    #[error("upload state is corrupt or from another backend: {0}")]
    BadUploadState(String),
    /// Reading the client's body failed (nothing of this call is kept).
    #[error("client body failed: {0}")]
    Body(std::io::Error),
    /// Local filesystem I/O failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The object store returned an error.
    #[error("object store failed: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The storage configuration is unusable.
    #[error("storage misconfigured: {0}")]
    Config(String),
}

impl StoreError {
    /// The error for bytes hashing to `actual` when `expected` was promised.
    pub(crate) fn mismatch(expected: &wharf_oci::Digest, actual: &wharf_oci::Digest) -> Self {
        Self::DigestMismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}
