//! Harbor's error envelope, `{"errors":[{"code":"...","message":"..."}]}`,
//! and the one mapping from this crate's [`Error`] to it. Internal failures
//! are logged with their cause and answered with an opaque 500.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// An API error as Harbor answers it: a status, a code word and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 409 `CONFLICT`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// 412 `PRECONDITION`.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "PRECONDITION", message)
    }

    /// 429 `TOO_MANY_REQUEST`.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUEST", message)
    }

    /// 500 with Harbor's opaque message; log the cause before calling this.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal server error",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Item<'a> {
            code: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            errors: [Item<'a>; 1],
        }
        serde_json::to_string(&Envelope {
            errors: [Item {
                code: self.code,
                message: &self.message,
            }],
        })
        .unwrap_or_else(|_| String::from(r#"{"errors":[{"code":"UNKNOWN","message":"error"}]}"#))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type("application/json")
            .body(self.body())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => ApiError::not_found("resource not found"),
            Error::Conflict(message) => ApiError::conflict(message),
            Error::Invalid(message) => ApiError::bad_request(message),
            Error::Database(cause) => {
                tracing::error!(error = %cause, "database error in the API");
                ApiError::internal()
            }
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal error in the API");
                ApiError::internal()
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(Error::Database(e))
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

/// Harbor's error envelope (schema `Errors`), the body of every error
/// response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Errors)]
pub struct ErrorsBody {
    pub errors: Vec<ErrorBody>,
}

/// One error of [`ErrorsBody`] (schema `Error`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, `DENIED`, `NOT_FOUND`,
    /// `CONFLICT`, `PRECONDITION`, `TOO_MANY_REQUEST` or `UNKNOWN`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// A resource whose JSON, path and query extractors answer malformed input
/// with Harbor's 400 envelope instead of actix's plain-text errors.
pub(super) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::JsonConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("invalid JSON body: {err}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("invalid path parameter: {err}")).into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("invalid query parameter: {err}")).into()
        }))
}
