#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob not found")]
    NotFound,
    #[error("content digest {actual} does not match the expected {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("upload state is corrupt or from another backend: {0}")]
    BadUploadState(String),
    #[error("client body failed: {0}")]
    Body(std::io::Error),
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store failed: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("storage misconfigured: {0}")]
    Config(String),
}
