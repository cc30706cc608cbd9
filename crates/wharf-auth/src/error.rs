//! The crate's one error type: what can stop the issuer from starting or a
//! request from being decided. HTTP handlers map it to an opaque 500 after
//! logging the cause; refusals (bad credentials, missing scope) are not
//! errors but answers, and never travel as this type.

use std::path::PathBuf;

/// What can go wrong in token authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The `[auth]` table holds a value that cannot work.
    #[error("invalid [auth] configuration: {0}")]
    Config(String),
    /// The signing key file cannot be read, written or understood.
    #[error("token signing key {}: {message}", path.display())]
    SigningKey { path: PathBuf, message: String },
    /// PostgreSQL failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Something that should not fail did (signing, random numbers).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<wharf_projects::Error> for AuthError {
    fn from(e: wharf_projects::Error) -> Self {
        match e {
            wharf_projects::Error::Database(e) => AuthError::Database(e),
            other => AuthError::Internal(other.to_string()),
        }
    }
}
