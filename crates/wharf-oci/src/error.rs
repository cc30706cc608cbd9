//! The fourteen error codes of the OCI distribution spec, their HTTP statuses and
//! the `{"errors":[{"code","message","detail"}]}` body.
//!
//! Only the spec's codes exist here on purpose: clients match on them, and
//! registries that invent their own (`NOT_FOUND`, `RANGE_INVALID`, …) break
//! clients. When no code fits exactly, pick the nearest one and override the status.

use std::fmt;

use crate::digest::DigestError;
use crate::manifest::ManifestError;
use crate::name::NameError;

/// One of the error codes defined by the distribution spec ("Error Codes" table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: blob unknown to registry.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: blob upload invalid.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: blob upload unknown to registry.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: provided digest did not match uploaded content.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: manifest invalid.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: manifest unknown to registry.
    ManifestUnknown,
    /// `NAME_INVALID`: invalid repository name.
    NameInvalid,
    /// `NAME_UNKNOWN`: repository name not known to registry.
    NameUnknown,
    /// `SIZE_INVALID`: provided length did not match content length.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: requested access to the resource is denied.
    Denied,
    /// `UNSUPPORTED`: the operation is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: too many requests.
    TooManyRequests,
}

impl ErrorCode {
    /// All fourteen codes, in the spec's table order.
    pub const ALL: [ErrorCode; 14] = [
        Self::BlobUnknown,
        Self::BlobUploadInvalid,
        Self::BlobUploadUnknown,
        Self::DigestInvalid,
        Self::ManifestBlobUnknown,
        Self::ManifestInvalid,
        Self::ManifestUnknown,
        Self::NameInvalid,
        Self::NameUnknown,
        Self::SizeInvalid,
        Self::Unauthorized,
        Self::Denied,
        Self::Unsupported,
        Self::TooManyRequests,
    ];

    /// `"BLOB_UNKNOWN"` etc.: the exact string the spec puts in `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The code for a spec code string (`"BLOB_UNKNOWN"` → `BlobUnknown`); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == s)
    }

    /// Default HTTP status: the `*_UNKNOWN` codes 404; `UNAUTHORIZED` 401; `DENIED` 403;
    /// `UNSUPPORTED` 415 (unsupported media type; use
    /// [`DistributionError::with_status`] for 405 on unsupported methods);
    /// `TOOMANYREQUESTS` 429; every other code 400.
    pub fn status(self) -> u16 {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestBlobUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown => 404,
            Self::BlobUploadInvalid
            | Self::DigestInvalid
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::SizeInvalid => 400,
            Self::Unauthorized => 401,
            Self::Denied => 403,
            Self::Unsupported => 415,
            Self::TooManyRequests => 429,
        }
    }

    /// The spec's short message for the code, used when nothing more specific is known.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::BlobUnknown => "blob unknown to registry",
            Self::BlobUploadInvalid => "blob upload invalid",
            Self::BlobUploadUnknown => "blob upload unknown to registry",
            Self::DigestInvalid => "provided digest did not match uploaded content",
            Self::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            Self::ManifestInvalid => "manifest invalid",
            Self::ManifestUnknown => "manifest unknown to registry",
            Self::NameInvalid => "invalid repository name",
            Self::NameUnknown => "repository name not known to registry",
            Self::SizeInvalid => "provided length did not match content length",
            Self::Unauthorized => "authentication required",
            Self::Denied => "requested access to the resource is denied",
            Self::Unsupported => "the operation is unsupported",
            Self::TooManyRequests => "too many requests",
        }
    }
}

impl fmt::Display for ErrorCode {
    /// Writes [`ErrorCode::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    /// Serializes as [`ErrorCode::as_str`].
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One error as the spec's body carries it; `status` may override the code's default
/// (e.g. 416 for BLOB_UPLOAD_INVALID on an out-of-order chunk, 413 for SIZE_INVALID on an oversize manifest).
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionError {
    /// The spec code, serialized as `code`.
    pub code: ErrorCode,
    /// Human-readable message, serialized as `message`.
    pub message: String,
    /// Optional structured detail, serialized as `detail` (omitted when `None`).
    pub detail: Option<serde_json::Value>,
    /// HTTP status to answer with; starts as `code.status()`.
    pub status: u16,
}

impl DistributionError {
    /// An error with `code`'s default status and no detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            status: code.status(),
        }
    }

    /// Attach a `detail` value.
    pub fn with_detail(self, detail: serde_json::Value) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }

    /// Answer with `status` instead of the code's default.
    pub fn with_status(self, status: u16) -> Self {
        Self { status, ..self }
    }

    /// `{"errors":[{"code":..,"message":..,"detail":..}]}` serialized.
    /// `detail` is omitted when `None`.
    pub fn to_body(&self) -> Vec<u8> {
        body_for(std::slice::from_ref(self))
    }
}

/// The spec body for several errors at once: `{"errors":[…]}` with one entry per error,
/// in order. The HTTP status is the caller's choice.
pub fn body_for(errors: &[DistributionError]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        errors: Vec<Entry<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a serde_json::Value>,
    }
    let body = Body {
        errors: errors
            .iter()
            .map(|e| Entry {
                code: e.code,
                message: &e.message,
                detail: e.detail.as_ref(),
            })
            .collect(),
    };
    // Serializing strings, an enum-as-string and an already-valid JSON value cannot fail.
    serde_json::to_vec(&body).expect("error body serialization is infallible")
}

impl From<ErrorCode> for DistributionError {
    /// The code with its default message and status.
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }
}

impl fmt::Display for DistributionError {
    /// `CODE: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for DistributionError {}

impl From<DigestError> for DistributionError {
    /// `DIGEST_INVALID` (400) with the digest error as message.
    fn from(err: DigestError) -> Self {
        Self::new(ErrorCode::DigestInvalid, err.to_string())
    }
}

impl From<NameError> for DistributionError {
    /// `DIGEST_INVALID` for a reference that is a malformed digest; `NAME_INVALID` (400)
    /// for a bad repository name or tag. The message is the error's explanation.
    fn from(err: NameError) -> Self {
        let code = match err {
            NameError::InvalidDigest { .. } => ErrorCode::DigestInvalid,
            NameError::InvalidName { .. }
            | NameError::NameTooLong { .. }
            | NameError::InvalidTag { .. } => ErrorCode::NameInvalid,
        };
        Self::new(code, err.to_string())
    }
}

impl From<ManifestError> for DistributionError {
    /// `SIZE_INVALID` with status 413 for an oversize manifest; `MANIFEST_INVALID` (400)
    /// for everything else, including unsupported media types such as Docker schema 1.
    fn from(err: ManifestError) -> Self {
        match err {
            ManifestError::TooLarge { .. } => {
                Self::new(ErrorCode::SizeInvalid, err.to_string()).with_status(413)
            }
            _ => Self::new(ErrorCode::ManifestInvalid, err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_and_statuses() {
        let expected = [
            ("BLOB_UNKNOWN", 404),
            ("BLOB_UPLOAD_INVALID", 400),
            ("BLOB_UPLOAD_UNKNOWN", 404),
            ("DIGEST_INVALID", 400),
            ("MANIFEST_BLOB_UNKNOWN", 404),
            ("MANIFEST_INVALID", 400),
            ("MANIFEST_UNKNOWN", 404),
            ("NAME_INVALID", 400),
            ("NAME_UNKNOWN", 404),
            ("SIZE_INVALID", 400),
            ("UNAUTHORIZED", 401),
            ("DENIED", 403),
            ("UNSUPPORTED", 415),
            ("TOOMANYREQUESTS", 429),
        ];
        for (code, (name, status)) in ErrorCode::ALL.into_iter().zip(expected) {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status(), status, "{name}");
            assert_eq!(ErrorCode::parse(name), Some(code));
            assert!(!code.default_message().is_empty());
        }
        assert_eq!(ErrorCode::parse("NOT_FOUND"), None);
    }

    #[test]
    fn body_without_detail_omits_it() {
        let err = DistributionError::new(ErrorCode::BlobUnknown, "no such blob");
        assert_eq!(err.status, 404);
        assert_eq!(
            String::from_utf8(err.to_body()).unwrap(),
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"no such blob"}]}"#
        );
    }

    #[test]
    fn body_with_detail_and_status_override() {
        let err = DistributionError::new(ErrorCode::BlobUploadInvalid, "out of order")
            .with_detail(json!({"expected": 10}))
            .with_status(416);
        assert_eq!(err.status, 416);
        let body: serde_json::Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!(
            body,
            json!({"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"out of order","detail":{"expected":10}}]})
        );
    }

    #[test]
    fn body_for_many() {
        let body = body_for(&[ErrorCode::Denied.into(), ErrorCode::NameUnknown.into()]);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED");
        assert_eq!(
            body["errors"][1]["message"],
            "repository name not known to registry"
        );
    }

    #[test]
    fn conversions() {
        let e = DistributionError::from(DigestError::Malformed);
        assert_eq!((e.code, e.status), (ErrorCode::DigestInvalid, 400));

        let e = DistributionError::from(crate::RepositoryName::parse("A").unwrap_err());
        assert_eq!((e.code, e.status), (ErrorCode::NameInvalid, 400));
        let e = DistributionError::from(crate::Reference::parse("sha256:zz").unwrap_err());
        assert_eq!(e.code, ErrorCode::DigestInvalid);
        let e = DistributionError::from(crate::Reference::parse("-x").unwrap_err());
        assert_eq!(e.code, ErrorCode::NameInvalid);

        let e = DistributionError::from(ManifestError::TooLarge {
            size: 5 << 20,
            max: crate::MAX_MANIFEST_SIZE,
        });
        assert_eq!((e.code, e.status), (ErrorCode::SizeInvalid, 413));
        let e = DistributionError::from(ManifestError::Invalid("x".into()));
        assert_eq!((e.code, e.status), (ErrorCode::ManifestInvalid, 400));
        assert_eq!(e.to_string(), format!("MANIFEST_INVALID: {}", e.message));
    }
}
