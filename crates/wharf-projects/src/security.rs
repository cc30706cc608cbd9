//! Who is asking, and what they may do: the security context every API call,
//! token request and registry access is decided with.
//!
//! A [`Principal`] is identified once per request (by `wharf-auth`: Basic
//! credentials, a robot secret, a session cookie, or nobody). Decisions about
//! a project go through [`ProjectAccess`], which loads the principal's roles
//! in that project once and then answers any number of (resource, action)
//! questions without touching the database.

use sqlx::{PgExecutor, PgPool};

use crate::error::Result;
use crate::members::member_roles;
use crate::projects::Project;
use crate::rbac;
use crate::robots::{PermissionKind, Robot};
use crate::roles::Role;
use crate::users::User;

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Nobody signed in.
    Anonymous,
    /// A local user.
    User(User),
    /// A robot account; `login_name` is its full name with the prefix
    /// (`robot$library+ci`).
    Robot { robot: Robot, login_name: String },
}

impl Principal {
    /// The name recorded in audit entries and token subjects: the username,
    /// the robot's login name, or `None` for anonymous callers.
    pub fn name(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::User(user) => Some(&user.username),
            Principal::Robot { login_name, .. } => Some(login_name),
        }
    }

    /// The name for the audit log: anonymous callers are `anonymous`.
    pub fn audit_name(&self) -> &str {
        self.name().unwrap_or("anonymous")
    }

    /// Whether anybody signed in.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous)
    }

    /// System administrators may do everything (robots never are).
    pub fn is_sysadmin(&self) -> bool {
        matches!(self, Principal::User(user) if user.sysadmin)
    }

    /// The user behind the principal, if it is one.
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User(user) => Some(user),
            _ => None,
        }
    }

    /// Whether the principal may do `action` on the system-level `resource`
    /// (`user`, `project`, `audit-log`, `catalog`, `robot`, ...; Harbor's
    /// `/system` namespace).
    ///
    /// Besides system administrators and robots granted the pair, every
    /// signed-in user may create projects (Harbor's default
    /// `project_creation_restriction = everyone`) and search users.
    pub fn can_system(&self, resource: &str, action: &str) -> bool {
        match self {
            Principal::Anonymous => false,
            Principal::User(user) => {
                user.sysadmin || (resource == "project" && matches!(action, "create" | "list"))
            }
            Principal::Robot { robot, .. } => robot.permissions.iter().any(|p| {
                p.kind == PermissionKind::System
                    && p.access
                        .iter()
                        .any(|a| a.resource == resource && a.action == action)
            }),
        }
    }
}

/// What a principal may do in one project, loaded once.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// The project the answers are about.
    pub project: Project,
    /// The principal's roles in it (empty for non-members and robots).
    pub roles: Vec<Role>,
    sysadmin: bool,
    /// For robots: the (resource, action) pairs granted in this project.
    robot_grants: Option<Vec<(String, String)>>,
}

impl ProjectAccess {
    /// Load what `principal` may do in `project` (one query for a user, none
    /// for anybody else).
    pub async fn load(
        db: impl PgExecutor<'_>,
        principal: &Principal,
        project: Project,
    ) -> Result<ProjectAccess> {
        let (roles, sysadmin, robot_grants) = match principal {
            Principal::Anonymous => (Vec::new(), false, None),
            Principal::User(user) => {
                let roles = if user.sysadmin {
                    Vec::new()
                } else {
                    member_roles(db, project.id, user.id).await?
                };
                (roles, user.sysadmin, None)
            }
            Principal::Robot { robot, .. } => {
                (Vec::new(), false, Some(robot_grants(robot, &project)))
            }
        };
        Ok(ProjectAccess {
            project,
            roles,
            sysadmin,
            robot_grants,
        })
    }

    /// Whether `action` on `resource` (Harbor's spelling; `""` is the project
    /// itself) is allowed.
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        let public = self.project.is_public();
        if let Some(grants) = &self.robot_grants {
            return grants.iter().any(|(r, a)| r == resource && a == action)
                || rbac::allowed(&[], false, public, resource, action);
        }
        rbac::allowed(&self.roles, self.sysadmin, public, resource, action)
    }

    /// Whether the principal may know the project exists at all: it may
    /// read it, or (a robot) holds any grant in it. Those who may not get
    /// "not found", never "forbidden".
    pub fn can_see(&self) -> bool {
        self.allows("", "read") || self.robot_grants.as_ref().is_some_and(|g| !g.is_empty())
    }

    /// The Harbor role id shown as `current_user_role_id` (the most powerful
    /// role held), 0 for none.
    pub fn current_role_id(&self) -> i16 {
        Role::ALL
            .into_iter()
            .find(|r| self.roles.contains(r))
            .map_or(0, Role::id)
    }
}

/// A robot's grants in `project`, with Harbor's adjustments: a `push` grant
/// implies `pull`, and resource `project` is the project itself (`""`).
fn robot_grants(robot: &Robot, project: &Project) -> Vec<(String, String)> {
    let mut grants = Vec::new();
    for permission in &robot.permissions {
        let applies = permission.kind == PermissionKind::Project
            && (permission.namespace == "*" || permission.project_id == Some(project.id));
        if !applies {
            continue;
        }
        for access in &permission.access {
            let resource = if access.resource == "project" {
                String::new()
            } else {
                access.resource.clone()
            };
            if access.resource == "repository" && access.action == "push" {
                grants.push(("repository".to_owned(), "pull".to_owned()));
            }
            grants.push((resource, access.action.clone()));
        }
    }
    grants
}

/// A principal and where its request came from: what the identification
/// layer (`wharf-auth`) leaves in a request for the API handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The client's address (behind trusted proxies), for the audit log.
    pub client_addr: Option<String>,
}

impl Caller {
    /// An anonymous caller from `client_addr`.
    pub fn anonymous(client_addr: Option<String>) -> Caller {
        Caller {
            principal: Principal::Anonymous,
            client_addr,
        }
    }
}

/// Why a login name and secret were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// No such user or robot, or the password or secret is wrong.
    BadCredentials,
    /// The robot account exists and the secret matched, but it is disabled.
    RobotDisabled,
    /// The robot account exists and the secret matched, but it has expired.
    RobotExpired,
}

/// Check Basic-style credentials: a robot when `name` starts with the robot
/// prefix, else a local user. Throttling is the caller's job (it knows the
/// client address and answers 429).
pub async fn identify_basic(
    pool: &PgPool,
    robot_prefix: &str,
    name: &str,
    secret: &str,
) -> Result<std::result::Result<Principal, LoginRefused>> {
    if name.starts_with(robot_prefix) {
        let Some(robot) =
            crate::robots::authenticate_robot(pool, robot_prefix, name, secret).await?
        else {
            return Ok(Err(LoginRefused::BadCredentials));
        };
        if robot.disabled {
            return Ok(Err(LoginRefused::RobotDisabled));
        }
        if robot.is_expired(chrono::Utc::now()) {
            return Ok(Err(LoginRefused::RobotExpired));
        }
        let login_name = robot.login_name(robot_prefix);
        return Ok(Ok(Principal::Robot { robot, login_name }));
    }
    Ok(crate::users::authenticate(pool, name, secret)
        .await?
        .map(Principal::User)
        .ok_or(LoginRefused::BadCredentials))
}
