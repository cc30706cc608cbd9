//! The crate's one error type. Callers map it once at the edge (Harbor's error
//! envelope, an HTML page); database details never travel further than logs.

/// What can go wrong in the project, user and membership domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user, project or membership does not exist (or is deleted).
    #[error("not found")]
    NotFound,
    /// The change clashes with existing data (a name already taken, ...).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule; the text says which, for the end user.
    #[error("{0}")]
    Invalid(String),
    /// PostgreSQL failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Something that should not fail did (password hashing, a worker thread).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `err` is a unique violation of the named constraint or index.
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.kind() == sqlx::error::ErrorKind::UniqueViolation && db.constraint() == Some(constraint)
    })
}
