//! The console's side of authorisation. Decisions are the services' own —
//! [`ProjectAccess::allows`] and [`Principal::can_system`], the same calls
//! the REST API makes — so a page never offers, and a form never performs,
//! anything the API would refuse to the same person.

use sqlx::PgPool;
use wharf_projects::{Error, ProjectAccess, get_project_by_name};

use crate::error::{UiError, UiResult};
use crate::session::Viewer;

/// The project named `name` and what the viewer may do in it. A project
/// the viewer may not see is "not found", exactly like a missing one.
pub async fn project(pool: &PgPool, viewer: &Viewer, name: &str) -> UiResult<ProjectAccess> {
    let missing = || UiError::not_found(format!("There is no project named {name}."));
    let project = match get_project_by_name(pool, name).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, viewer.principal(), project).await?;
    if !access.can_see() {
        return Err(missing());
    }
    Ok(access)
}

/// Refuse unless `action` on `resource` is allowed in the project.
pub fn require(access: &ProjectAccess, resource: &str, action: &str) -> UiResult<()> {
    if access.allows(resource, action) {
        return Ok(());
    }
    let what = if resource.is_empty() {
        "the project".to_owned()
    } else {
        resource.replace('-', " ")
    };
    Err(UiError::Forbidden(format!(
        "Your role in {} does not allow you to {action} {what}.",
        access.project.name
    )))
}

/// Refuse unless the system-level `action` on `resource` is allowed.
pub fn require_system(viewer: &Viewer, resource: &str, action: &str) -> UiResult<()> {
    if viewer.principal().can_system(resource, action) {
        return Ok(());
    }
    Err(UiError::Forbidden(format!(
        "Only system administrators may {action} {}.",
        resource.replace('-', " ")
    )))
}

/// The audit entry of a change the viewer made, as the REST API writes it.
pub fn audit_entry<'a>(
    viewer: &'a Viewer,
    project_id: Option<i64>,
    operation: &'a str,
    resource_type: &'a str,
    resource: &'a str,
    description: &'a str,
) -> wharf_projects::audit::AuditEntry<'a> {
    wharf_projects::audit::AuditEntry {
        project_id,
        username: viewer.caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type,
        resource,
        client_addr: viewer.caller.client_addr.as_deref(),
    }
}

/// The tabs of a project's pages, and which of them the viewer may open
/// (a tab the viewer may not use is not shown at all).
#[derive(Debug, Clone)]
pub struct ProjectNav {
    pub name: String,
    pub public: bool,
    /// The current tab: `repositories`, `members`, `robots`, `logs`,
    /// `configuration`.
    pub tab: &'static str,
    pub members: bool,
    pub robots: bool,
    pub logs: bool,
    pub labels: bool,
    /// The Policy tab: immutable tags, tag retention, or both.
    pub policy: bool,
    pub immutable: bool,
    pub retention: bool,
    /// The viewer's role, for the header (`—` for none).
    pub role: String,
}

impl ProjectNav {
    /// The navigation of `access`'s project with `tab` current.
    pub fn new(access: &ProjectAccess, viewer: &Viewer, tab: &'static str) -> ProjectNav {
        let role = if viewer.user.sysadmin && access.roles.is_empty() {
            "system admin".to_owned()
        } else {
            wharf_projects::Role::ALL
                .into_iter()
                .find(|r| access.roles.contains(r))
                .map_or_else(|| "—".to_owned(), |r| role_label(r).to_owned())
        };
        ProjectNav {
            name: access.project.name.clone(),
            public: access.project.is_public(),
            tab,
            members: access.allows("member", "list"),
            robots: access.allows("robot", "list"),
            logs: access.allows("log", "list"),
            labels: access.allows("label", "list"),
            policy: access.allows("immutable-tag", "list")
                || access.allows("tag-retention", "list"),
            immutable: access.allows("immutable-tag", "list"),
            retention: access.allows("tag-retention", "list"),
            role,
        }
    }

    /// The URL of a tab of this project.
    pub fn url(&self, tab: &str) -> String {
        crate::format::project_url(&self.name, &format!("/{tab}"))
    }
}

/// A role as people read it.
pub fn role_label(role: wharf_projects::Role) -> &'static str {
    use wharf_projects::Role;
    match role {
        Role::ProjectAdmin => "Project admin",
        Role::Maintainer => "Maintainer",
        Role::Developer => "Developer",
        Role::Guest => "Guest",
        Role::LimitedGuest => "Limited guest",
    }
}
