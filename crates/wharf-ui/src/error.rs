//! The console's one error type and its one mapping to HTML: every failure a
//! page handler does not show next to the form that caused it ends here, as
//! a page in the console's layout with a way back. Internal failures are
//! logged with their cause and shown as an opaque 500, like the API's.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::layout::Chrome;

/// Why a console request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiError {
    /// Nobody is signed in (or the session ended): go to the sign-in page,
    /// then back to `next`.
    SignIn { next: String },
    /// The thing asked for does not exist, or the viewer may not know it does.
    NotFound(String),
    /// The viewer may not do this.
    Forbidden(String),
    /// The request itself is wrong (a bad link or a hand-made form).
    BadRequest(String),
    /// A form came without this session's CSRF token.
    Csrf,
    /// Something failed that should not; the cause is in the log.
    Internal,
}

/// Shorthand for handler results.
pub type UiResult<T> = Result<T, UiError>;

impl UiError {
    /// A [`UiError::NotFound`] naming what is missing.
    pub fn not_found(what: impl Into<String>) -> UiError {
        UiError::NotFound(what.into())
    }

    fn heading(&self) -> &'static str {
        match self {
            UiError::SignIn { .. } => "Sign in",
            UiError::NotFound(_) => "Not found",
            UiError::Forbidden(_) => "Not allowed",
            UiError::BadRequest(_) => "Bad request",
            UiError::Csrf => "Form refused",
            UiError::Internal => "Something went wrong",
        }
    }

    /// What the viewer is told.
    pub fn message(&self) -> String {
        match self {
            UiError::SignIn { .. } => "Sign in to continue.".to_owned(),
            UiError::NotFound(m) | UiError::Forbidden(m) | UiError::BadRequest(m) => m.clone(),
            UiError::Csrf => "This form did not carry this session's security token, so it \
                              was not acted on. It may have come from another site, or from a \
                              page opened before you last signed in. Reload the page and try \
                              again."
                .to_owned(),
            UiError::Internal => "Wharf could not complete the request. The server log has \
                                  the details; try again in a moment."
                .to_owned(),
        }
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.heading(), self.message())
    }
}

/// The page every [`UiError`] renders as.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    status: u16,
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignIn { .. } => StatusCode::SEE_OTHER,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Forbidden(_) | UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let UiError::SignIn { next } = self {
            let location = crate::pages::auth::login_url(next);
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .finish();
        }
        self.page(Chrome::bare(self.heading()))
    }
}

impl UiError {
    /// The error page in `chrome`.
    fn page(&self, chrome: Chrome) -> HttpResponse {
        let status = self.status_code();
        let page = ErrorPage {
            chrome,
            heading: self.heading(),
            message: self.message(),
            status: status.as_u16(),
        };
        crate::layout::html(status, &page)
    }

    /// The error page for a signed-in viewer: inside the normal layout, with
    /// the top navigation, so a 403, 404 or 500 is not a dead end.
    pub(crate) fn page_for(&self, viewer: &crate::session::Viewer) -> HttpResponse {
        if matches!(self, UiError::SignIn { .. }) {
            return self.error_response();
        }
        self.page(Chrome::new(viewer, self.heading(), ""))
    }
}

impl From<wharf_projects::Error> for UiError {
    fn from(e: wharf_projects::Error) -> Self {
        use wharf_projects::Error;
        match e {
            Error::NotFound => UiError::not_found("The page or item does not exist."),
            Error::Conflict(m) | Error::Invalid(m) => UiError::BadRequest(m),
            Error::Database(cause) => {
                tracing::error!(error = %cause, "database error in the console");
                UiError::Internal
            }
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal error in the console");
                UiError::Internal
            }
        }
    }
}

impl From<sqlx::Error> for UiError {
    fn from(e: sqlx::Error) -> Self {
        UiError::from(wharf_projects::Error::Database(e))
    }
}

impl From<wharf_auth::AuthError> for UiError {
    fn from(e: wharf_auth::AuthError) -> Self {
        tracing::error!(error = %e, "authentication service error in the console");
        UiError::Internal
    }
}

impl From<wharf_jobs::JobsError> for UiError {
    fn from(e: wharf_jobs::JobsError) -> Self {
        tracing::error!(error = %e, "job queue error in the console");
        UiError::Internal
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "a console template failed to render");
        UiError::Internal
    }
}

impl From<wharf_replication::ReplicationError> for UiError {
    fn from(e: wharf_replication::ReplicationError) -> Self {
        use wharf_replication::ReplicationError;
        match e {
            ReplicationError::Invalid(m) => UiError::BadRequest(m),
            ReplicationError::NotFound { what } => UiError::not_found(format!("{what} not found.")),
            ReplicationError::Database(cause) => {
                tracing::error!(error = %cause, "database error in the console");
                UiError::Internal
            }
            // A remote registry's answer: the administrator can act on it.
            other => UiError::BadRequest(other.to_string()),
        }
    }
}
