//! The fourteen error codes of the OCI distribution spec, their HTTP statuses and
//! the `{"errors":[{"code","message","detail"}]}` body.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, ManifestBlobUnknown,
    ManifestInvalid, ManifestUnknown, NameInvalid, NameUnknown, SizeInvalid, Unauthorized,
    Denied, Unsupported, TooManyRequests,
}
impl ErrorCode {
    /// `"BLOB_UNKNOWN"` etc.
    pub fn as_str(self) -> &'static str { unimplemented!() }
    /// Default HTTP status per the spec's table (BLOB_UNKNOWN 404, DIGEST_INVALID 400, UNAUTHORIZED 401, DENIED 403, UNSUPPORTED 415? ...)
    pub fn status(self) -> u16 { unimplemented!() }
    pub fn default_message(self) -> &'static str { unimplemented!() }
}

/// One error as the spec's body carries it; `status` may override the code's default
/// (e.g. 416 for BLOB_UPLOAD_INVALID on an out-of-order chunk, 413 for SIZE_INVALID on an oversize manifest).
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionError { pub code: ErrorCode, pub message: String, pub detail: Option<serde_json::Value>, pub status: u16 }
impl DistributionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self { unimplemented!() }
    pub fn with_detail(self, detail: serde_json::Value) -> Self { unimplemented!() }
    pub fn with_status(self, status: u16) -> Self { unimplemented!() }
    /// `{"errors":[{"code":..,"message":..,"detail":..}]}` serialized.
    pub fn to_body(&self) -> Vec<u8> { unimplemented!() }
}
