//! The access decision: may this principal do `action` on `resource` in a
//! project? Pure and synchronous, so the token issuer and the API extractors
//! can call it after loading the roles once.

use crate::roles::{PUBLIC_PROJECT_POLICIES, Role};

/// The one action a system administrator does not get: only scanner robots
/// may use it (Harbor's `admin.go`).
pub const SCANNER_PULL: &str = "scanner-pull";

/// Whether a principal may perform `action` on `resource` (Harbor's
/// spelling; `""` is the project itself) in a project.
///
/// - `roles`: the principal's roles in the project (empty for anonymous users
///   and non-members); the union of their permissions applies.
/// - `is_sysadmin`: system administrators may do everything except
///   `scanner-pull`.
/// - `is_public`: on a public project every visitor, anonymous included, also
///   gets [`PUBLIC_PROJECT_POLICIES`] (pull, read the project, list
///   repositories, artifacts and tags, read labels and scan results).
pub fn allowed(
    roles: &[Role],
    is_sysadmin: bool,
    is_public: bool,
    resource: &str,
    action: &str,
) -> bool {
    if is_sysadmin && action != SCANNER_PULL {
        return true;
    }
    if is_public
        && PUBLIC_PROJECT_POLICIES
            .iter()
            .any(|&(res, act)| res == resource && act == action)
    {
        return true;
    }
    roles.iter().any(|role| role.can(resource, action))
}
