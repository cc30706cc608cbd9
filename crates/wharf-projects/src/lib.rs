//! Projects, users, members and Harbor's role-based access control, stored in
//! PostgreSQL. This is the domain layer: plain Rust types and async functions
//! over sqlx executors, no HTTP. The Harbor-compatible API, the token issuer
//! and the UI all call these functions.
//!
//! Functions that run one statement take any [`sqlx::PgExecutor`] (a pool, a
//! connection or a transaction); those that run several take an
//! [`sqlx::Acquire`] and open a transaction (a savepoint inside the caller's
//! transaction), so a caller can bundle a change with its audit entry.

pub mod admission;
pub mod artifacts;
pub mod audit;
pub mod error;
pub mod http;
pub mod immutability;
pub mod jobs;
pub mod labels;
pub mod members;
pub mod names;
pub mod password;
pub mod projects;
pub mod quotas;
pub mod rbac;
pub mod retention;
pub mod robots;
pub mod roles;
pub mod security;
pub mod selectors;
pub mod users;
pub mod webhooks;

pub use error::{Error, Result};
pub use members::{
    Member, add_member, get_member, list_members, member_roles, remove_member, update_member_role,
};
pub use names::{ProjectName, Username};
pub use projects::validate_metadata;
pub use projects::{
    LIBRARY, NewProject, Project, ProjectQuery, Visibility, create_project, delete_metadata,
    delete_project, ensure_library_project, get_project, get_project_by_name, list_projects,
    set_metadata, set_storage_limit,
};
pub use rbac::allowed;
pub use roles::Role;
pub use security::{Caller, LoginRefused, Principal, ProjectAccess, identify_basic};
pub use users::{
    ADMIN, NewUser, User, UserProfile, UserQuery, authenticate, create_user, delete_user,
    ensure_admin, get_user, get_user_by_name, list_users, set_password, set_sysadmin,
    update_profile,
};

/// One page of a listing and the total number of matching rows (for Harbor's
/// `X-Total-Count` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// The rows on this page.
    pub items: Vec<T>,
    /// How many rows match in all.
    pub total: i64,
}

/// Which page of a listing to return. Pages count from 1, as in Harbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Rows per page (1–100).
    pub page_size: u32,
}

impl Default for Page {
    /// Harbor's defaults: page 1 of 10.
    fn default() -> Self {
        Page {
            page: 1,
            page_size: 10,
        }
    }
}

impl Page {
    /// Largest page Harbor serves.
    pub const MAX_SIZE: u32 = 100;

    /// SQL `LIMIT` and `OFFSET` for this page, clamped to sane values.
    pub(crate) fn limit_offset(self) -> (i64, i64) {
        let size = i64::from(self.page_size.clamp(1, Self::MAX_SIZE));
        let page = i64::from(self.page.max(1));
        (size, (page - 1) * size)
    }
}
