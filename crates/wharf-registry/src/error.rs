//! The registry's one error type and its mapping to the distribution spec's
//! error envelope. Internal failures are logged with their cause and answered
//! with an opaque 500.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use wharf_oci::{DistributionError, ErrorCode};
use wharf_store::StoreError;

use crate::seams::{AdmissionError, AuthError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A protocol error the client caused: answered with its code and status.
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Distribution(DistributionError),
    /// 401 with a challenge.
    #[error("unauthorized: {message}")]
    Unauthorized { challenge: String, message: String },
    /// 429 with `Retry-After`.
    #[error("too many requests: {message}")]
    TooManyRequests {
        retry_after_secs: u64,
        message: String,
    },
    /// 416 on an out-of-order chunk; carries the upload's current `Range`.
    #[error("chunk does not start at the upload's current offset")]
    RangeNotSatisfiable {
        location: String,
        upload_id: String,
        range: String,
    },
    /// 416 on a blob `Range` the blob cannot satisfy.
    #[error("requested range not satisfiable for a blob of {size} bytes")]
    BlobRangeNotSatisfiable { size: u64 },
    /// 503: authorisation could not be decided.
    #[error("authorisation unavailable: {0}")]
    AuthUnavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("storage error: {0}")]
    Store(StoreError),
    /// A local failure outside the database and the store (finding a proxy
    /// project's upstream): an opaque 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    /// Shorthand for a protocol error with the code's default status.
    pub fn code(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError::Distribution(DistributionError::new(code, message))
    }

    /// Shorthand for a protocol error with a `detail` object.
    pub fn with_detail(
        code: ErrorCode,
        message: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        RegistryError::Distribution(DistributionError::new(code, message).with_detail(detail))
    }
}

impl From<DistributionError> for RegistryError {
    fn from(e: DistributionError) -> Self {
        RegistryError::Distribution(e)
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DigestMismatch { expected, actual } => RegistryError::with_detail(
                ErrorCode::DigestInvalid,
                "provided digest did not match uploaded content",
                serde_json::json!({ "expected": expected, "actual": actual }),
            ),
            StoreError::Body(io) => RegistryError::code(
                ErrorCode::BlobUploadInvalid,
                format!("the request body could not be read: {io}"),
            ),
            StoreError::RangeNotSatisfiable { size } => {
                RegistryError::BlobRangeNotSatisfiable { size }
            }
            StoreError::NotFound => {
                RegistryError::code(ErrorCode::BlobUnknown, "blob unknown to registry")
            }
            other => RegistryError::Store(other),
        }
    }
}

impl From<AuthError> for RegistryError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized { challenge, message } => {
                RegistryError::Unauthorized { challenge, message }
            }
            AuthError::Denied { message } => RegistryError::code(ErrorCode::Denied, message),
            AuthError::NameUnknown => RegistryError::code(
                ErrorCode::NameUnknown,
                "repository name not known to registry",
            ),
            AuthError::TooManyRequests {
                retry_after_secs,
                message,
            } => RegistryError::TooManyRequests {
                retry_after_secs,
                message,
            },
            AuthError::Unavailable { cause } => RegistryError::AuthUnavailable(cause),
        }
    }
}

impl From<AdmissionError> for RegistryError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Denied { message } => RegistryError::code(ErrorCode::Denied, message),
            AdmissionError::Database(e) => RegistryError::Database(e),
        }
    }
}

fn json_error(status: StatusCode, error: &DistributionError) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(error.to_body())
}

impl ResponseError for RegistryError {
    fn status_code(&self) -> StatusCode {
        match self {
            RegistryError::Distribution(e) => {
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            RegistryError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            RegistryError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            RegistryError::RangeNotSatisfiable { .. }
            | RegistryError::BlobRangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            RegistryError::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RegistryError::Database(_) | RegistryError::Store(_) | RegistryError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            RegistryError::Distribution(e) => json_error(status, e),
            RegistryError::Unauthorized { challenge, message } => {
                let mut resp = json_error(
                    status,
                    &DistributionError::new(ErrorCode::Unauthorized, message.clone()),
                );
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                resp
            }
            RegistryError::TooManyRequests {
                retry_after_secs,
                message,
            } => {
                let mut resp = json_error(
                    status,
                    &DistributionError::new(ErrorCode::TooManyRequests, message.clone()),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                resp
            }
            RegistryError::RangeNotSatisfiable {
                location,
                upload_id,
                range,
            } => HttpResponse::build(status)
                .content_type("application/json")
                .insert_header((header::LOCATION, location.as_str()))
                .insert_header(("Docker-Upload-UUID", upload_id.as_str()))
                .insert_header((header::RANGE, range.as_str()))
                .body(
                    DistributionError::new(
                        ErrorCode::BlobUploadInvalid,
                        "chunk does not start at the end of the data uploaded so far",
                    )
                    .to_body(),
                ),
            RegistryError::BlobRangeNotSatisfiable { size } => HttpResponse::build(status)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish(),
            RegistryError::AuthUnavailable(_) => {
                tracing::error!(error = %self, "cannot authorise a registry request");
                HttpResponse::build(status)
                    .insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")))
                    .content_type("text/plain; charset=utf-8")
                    .body("authorisation is unavailable right now; try again shortly")
            }
            RegistryError::Database(_) | RegistryError::Store(_) | RegistryError::Internal(_) => {
                tracing::error!(error = %self, "internal error");
                HttpResponse::build(status)
                    .content_type("text/plain; charset=utf-8")
                    .body("internal server error; the server log has the cause")
            }
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
