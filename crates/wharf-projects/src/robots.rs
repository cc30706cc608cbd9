//! Robot accounts, Harbor's v2 model: system-level robots (`robot$ci`) and
//! project-level robots (`robot$<project>+ci`) with a list of granted
//! (namespace, resource, action), an expiry in days or never, a disabled flag,
//! and a secret that is shown once (at creation and on refresh) and stored
//! only as an argon2id hash.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection, PgExecutor, Postgres};

use crate::error::{Error, Result, is_unique_violation};
use crate::names::ProjectName;
use crate::projects::get_project_by_name;
use crate::{Listing, Page, password};

/// Default login-name prefix of robot accounts (Harbor's `robot_name_prefix`).
pub const DEFAULT_PREFIX: &str = "robot$";

/// Whether a permission grants system resources or project resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionKind {
    System,
    Project,
}

impl PermissionKind {
    fn as_str(self) -> &'static str {
        match self {
            PermissionKind::System => "system",
            PermissionKind::Project => "project",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "system" => Ok(PermissionKind::System),
            "project" => Ok(PermissionKind::Project),
            other => Err(Error::Invalid(format!(
                "permission kind must be \"system\" or \"project\", not {other:?}"
            ))),
        }
    }
}

/// The level of a robot: Harbor's `level` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotLevel {
    System,
    Project,
}

/// One (resource, action) a permission grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RobotAccess {
    pub resource: String,
    pub action: String,
}

/// A group of grants in one namespace: `/` for system resources, a project
/// name, or `*` for every project (system robots only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotPermission {
    pub kind: PermissionKind,
    pub namespace: String,
    /// The project `namespace` names, resolved when the robot was saved.
    pub project_id: Option<i64>,
    pub access: Vec<RobotAccess>,
}

/// A robot account (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Robot {
    pub id: i64,
    /// The stored name without the login prefix: `ci` or `<project>+ci`.
    pub name: String,
    /// The project of a project-level robot.
    pub project_id: Option<i64>,
    pub description: String,
    /// Requested lifetime in days; -1 never expires.
    pub duration_days: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub disabled: bool,
    /// `local` (a user) or `robot`.
    pub creator_type: String,
    pub creator_ref: i64,
    pub permissions: Vec<RobotPermission>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Robot {
    /// System or project level.
    pub fn level(&self) -> RobotLevel {
        if self.project_id.is_some() {
            RobotLevel::Project
        } else {
            RobotLevel::System
        }
    }

    /// The name a client logs in with: `<prefix><name>`.
    pub fn login_name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name)
    }

    /// Whether the robot has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Harbor's `expires_at`: seconds since the epoch, -1 for never.
    pub fn expires_at_epoch(&self) -> i64 {
        self.expires_at.map_or(-1, |at| at.timestamp())
    }
}

/// The (resource, action) pairs a robot may be granted in a project
/// namespace (Harbor's `PoliciesMap[ScopeProject]` with `NolimitProvider`).
pub const PROJECT_GRANTABLE: &[(&str, &str)] = &[
    ("log", "list"),
    ("project", "read"),
    ("project", "delete"),
    ("project", "update"),
    ("metadata", "read"),
    ("metadata", "create"),
    ("metadata", "delete"),
    ("metadata", "list"),
    ("metadata", "update"),
    ("repository", "read"),
    ("repository", "update"),
    ("repository", "delete"),
    ("repository", "list"),
    ("repository", "pull"),
    ("repository", "push"),
    ("artifact", "read"),
    ("artifact", "create"),
    ("artifact", "list"),
    ("artifact", "delete"),
    ("scan", "create"),
    ("scan", "read"),
    ("scan", "stop"),
    ("sbom", "create"),
    ("sbom", "stop"),
    ("sbom", "read"),
    ("tag", "create"),
    ("tag", "list"),
    ("tag", "delete"),
    ("accessory", "list"),
    ("artifact-addition", "read"),
    ("artifact-label", "create"),
    ("artifact-label", "delete"),
    ("scanner", "create"),
    ("scanner", "read"),
    ("preheat-policy", "read"),
    ("preheat-policy", "create"),
    ("preheat-policy", "delete"),
    ("preheat-policy", "list"),
    ("preheat-policy", "update"),
    ("immutable-tag", "create"),
    ("immutable-tag", "delete"),
    ("immutable-tag", "list"),
    ("immutable-tag", "update"),
    ("notification-policy", "read"),
    ("notification-policy", "create"),
    ("notification-policy", "delete"),
    ("notification-policy", "list"),
    ("notification-policy", "update"),
    ("tag-retention", "read"),
    ("tag-retention", "create"),
    ("tag-retention", "delete"),
    ("tag-retention", "list"),
    ("tag-retention", "update"),
    ("label", "read"),
    ("label", "create"),
    ("label", "delete"),
    ("label", "list"),
    ("label", "update"),
    ("quota", "read"),
    ("robot", "create"),
    ("robot", "read"),
    ("robot", "list"),
    ("robot", "delete"),
    ("export-cve", "create"),
    ("export-cve", "read"),
    ("member", "create"),
    ("member", "read"),
    ("member", "update"),
    ("member", "list"),
    ("member", "delete"),
];

/// The (resource, action) pairs a system robot may be granted in the system
/// namespace (Harbor's `PoliciesMap[ScopeSystem]` with `NolimitProvider`).
pub const SYSTEM_GRANTABLE: &[(&str, &str)] = &[
    ("audit-log", "list"),
    ("preheat-instance", "read"),
    ("preheat-instance", "create"),
    ("preheat-instance", "delete"),
    ("preheat-instance", "list"),
    ("preheat-instance", "update"),
    ("project", "list"),
    ("project", "create"),
    ("replication-policy", "read"),
    ("replication-policy", "create"),
    ("replication-policy", "delete"),
    ("replication-policy", "list"),
    ("replication-policy", "update"),
    ("replication", "read"),
    ("replication", "create"),
    ("replication", "list"),
    ("replication-adapter", "list"),
    ("registry", "read"),
    ("registry", "create"),
    ("registry", "delete"),
    ("registry", "list"),
    ("registry", "update"),
    ("scan-all", "read"),
    ("scan-all", "update"),
    ("scan-all", "stop"),
    ("scan-all", "create"),
    ("system-volumes", "read"),
    ("garbage-collection", "read"),
    ("garbage-collection", "create"),
    ("garbage-collection", "list"),
    ("garbage-collection", "update"),
    ("garbage-collection", "stop"),
    ("purge-audit", "read"),
    ("purge-audit", "create"),
    ("purge-audit", "list"),
    ("purge-audit", "update"),
    ("purge-audit", "stop"),
    ("jobservice-monitor", "list"),
    ("jobservice-monitor", "stop"),
    ("scanner", "read"),
    ("scanner", "create"),
    ("scanner", "delete"),
    ("scanner", "list"),
    ("scanner", "update"),
    ("label", "read"),
    ("label", "create"),
    ("label", "delete"),
    ("label", "update"),
    ("security-hub", "read"),
    ("security-hub", "list"),
    ("catalog", "read"),
    ("quota", "read"),
    ("quota", "list"),
    ("robot", "create"),
    ("robot", "read"),
    ("robot", "list"),
    ("robot", "delete"),
    ("user", "create"),
    ("user", "read"),
    ("user", "update"),
    ("user", "list"),
    ("user", "delete"),
    ("ldap-user", "create"),
    ("ldap-user", "list"),
    ("quota", "update"),
    ("user-group", "create"),
    ("user-group", "read"),
    ("user-group", "update"),
    ("user-group", "list"),
    ("user-group", "delete"),
];

/// A permission as a client states it, before the namespace is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionSpec {
    pub kind: String,
    pub namespace: String,
    pub access: Vec<RobotAccess>,
}

/// What is needed to create a robot.
#[derive(Debug, Clone)]
pub struct NewRobot {
    /// The short name (`ci`), Harbor's project-name rule.
    pub name: String,
    pub description: String,
    pub level: RobotLevel,
    /// Days until expiry; -1 never.
    pub duration_days: i64,
    pub disabled: bool,
    pub permissions: Vec<PermissionSpec>,
    /// `local` for a user, `robot` for a robot creating a robot.
    pub creator_type: String,
    pub creator_ref: i64,
}

/// What may be changed on an existing robot (name and level are fixed).
#[derive(Debug, Clone)]
pub struct RobotUpdate {
    pub description: String,
    pub duration_days: i64,
    pub disabled: bool,
    pub permissions: Vec<PermissionSpec>,
}

/// Filter and page for [`list_robots`].
#[derive(Debug, Clone, Default)]
pub struct RobotQuery {
    /// Only robots of this level.
    pub level: Option<RobotLevel>,
    /// Only robots of this project (project level).
    pub project_id: Option<i64>,
    /// Only robots whose stored name contains this text.
    pub name_contains: Option<String>,
    /// Only the robot with exactly this stored name (`ci`, `library+ci`).
    pub name: Option<String>,
    /// Order of the rows; the id breaks ties (and is the order when empty).
    pub sort: Vec<RobotSort>,
    pub page: Page,
}

/// A column robots can be ordered by (Harbor's `sort` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotSortKey {
    Id,
    Name,
    CreationTime,
    UpdateTime,
    ExpiresAt,
    Duration,
}

impl RobotSortKey {
    /// The key with Harbor's name (`creation_time`, ...), if there is one.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "id" => RobotSortKey::Id,
            "name" => RobotSortKey::Name,
            "creation_time" => RobotSortKey::CreationTime,
            "update_time" => RobotSortKey::UpdateTime,
            "expires_at" => RobotSortKey::ExpiresAt,
            "duration" => RobotSortKey::Duration,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            RobotSortKey::Id => "id",
            RobotSortKey::Name => "name",
            RobotSortKey::CreationTime => "created_at",
            RobotSortKey::UpdateTime => "updated_at",
            // Never-expiring robots (NULL) sort as the latest expiry.
            RobotSortKey::ExpiresAt => "coalesce(expires_at, 'infinity'::timestamptz)",
            RobotSortKey::Duration => "duration_days",
        }
    }
}

/// One ordering term of [`RobotQuery::sort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RobotSort {
    pub key: RobotSortKey,
    pub descending: bool,
}

fn check_duration(days: i64) -> Result<()> {
    if days == -1 || (1..=365 * 100).contains(&days) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "duration must be -1 (never expires) or a number of days from 1 to 36500".into(),
        ))
    }
}

/// Check the permissions against Harbor's rules for the robot's level and
/// resolve project namespaces to project ids. For a project robot of
/// `project`, exactly one `project` permission in that project.
async fn resolve_permissions(
    conn: &mut PgConnection,
    level: RobotLevel,
    project: Option<&str>,
    specs: &[PermissionSpec],
) -> Result<Vec<RobotPermission>> {
    if specs.is_empty() {
        return Err(Error::Invalid(
            "a robot account needs at least one permission".into(),
        ));
    }
    if level == RobotLevel::Project && specs.len() != 1 {
        return Err(Error::Invalid(
            "a project-level robot takes exactly one permission entry, for its project".into(),
        ));
    }
    let mut resolved = Vec::with_capacity(specs.len());
    for spec in specs {
        let kind = PermissionKind::parse(&spec.kind)?;
        let (grantable, project_id) = match kind {
            PermissionKind::System => {
                if level == RobotLevel::Project {
                    return Err(Error::Invalid(
                        "a project-level robot cannot hold system permissions".into(),
                    ));
                }
                if spec.namespace != "/" {
                    return Err(Error::Invalid(format!(
                        "system permissions use namespace \"/\", not {:?}",
                        spec.namespace
                    )));
                }
                (SYSTEM_GRANTABLE, None)
            }
            PermissionKind::Project => {
                if let Some(own) = project
                    && spec.namespace != own
                {
                    return Err(Error::Invalid(format!(
                        "a robot of project {own} can only be granted access to {own}, not {:?}",
                        spec.namespace
                    )));
                }
                let id = if spec.namespace == "*" {
                    if level == RobotLevel::Project {
                        return Err(Error::Invalid(
                            "only system-level robots may cover every project (\"*\")".into(),
                        ));
                    }
                    None
                } else {
                    match get_project_by_name(&mut *conn, &spec.namespace).await {
                        Ok(p) => Some(p.id),
                        Err(Error::NotFound) => {
                            return Err(Error::Invalid(format!(
                                "project {:?} in the permissions does not exist",
                                spec.namespace
                            )));
                        }
                        Err(e) => return Err(e),
                    }
                };
                (PROJECT_GRANTABLE, id)
            }
        };
        if spec.access.is_empty() {
            return Err(Error::Invalid(format!(
                "the permission on {:?} grants nothing",
                spec.namespace
            )));
        }
        let mut access: Vec<RobotAccess> = Vec::new();
        for a in &spec.access {
            if !grantable
                .iter()
                .any(|&(r, act)| r == a.resource && act == a.action)
            {
                return Err(Error::Invalid(format!(
                    "{} permission {}:{} cannot be granted to a robot",
                    kind.as_str(),
                    a.resource,
                    a.action
                )));
            }
            if !access.contains(a) {
                access.push(a.clone());
            }
        }
        if resolved
            .iter()
            .any(|p: &RobotPermission| p.kind == kind && p.namespace == spec.namespace)
        {
            return Err(Error::Invalid(format!(
                "namespace {:?} appears twice in the permissions",
                spec.namespace
            )));
        }
        resolved.push(RobotPermission {
            kind,
            namespace: spec.namespace.clone(),
            project_id,
            access,
        });
    }
    Ok(resolved)
}

/// A robot and the plain secret to show its creator exactly once.
#[derive(Debug, Clone)]
pub struct CreatedRobot {
    pub robot: Robot,
    pub secret: String,
}

/// Create a robot with a generated secret. A project-level robot is named
/// `<project>+<name>` and must name its project as its one namespace.
pub async fn create_robot(
    db: impl Acquire<'_, Database = Postgres>,
    new: &NewRobot,
) -> Result<CreatedRobot> {
    ProjectName::parse(&new.name).map_err(|_| {
        Error::Invalid(format!(
            "robot name {:?} is invalid: use lowercase letters and digits separated by single \
             '.', '_' or '-'",
            new.name
        ))
    })?;
    check_duration(new.duration_days)?;
    let mut tx = db.begin().await?;
    let (stored_name, project_id, project_name) = match new.level {
        RobotLevel::System => (new.name.clone(), None, None),
        RobotLevel::Project => {
            let [spec] = new.permissions.as_slice() else {
                return Err(Error::Invalid(
                    "a project-level robot takes exactly one permission entry, for its project"
                        .into(),
                ));
            };
            let project = match get_project_by_name(&mut *tx, &spec.namespace).await {
                Ok(p) => p,
                Err(Error::NotFound) => {
                    return Err(Error::Invalid(format!(
                        "project {:?} does not exist",
                        spec.namespace
                    )));
                }
                Err(e) => return Err(e),
            };
            (
                format!("{}+{}", project.name, new.name),
                Some(project.id),
                Some(project.name),
            )
        }
    };
    let permissions = resolve_permissions(
        &mut tx,
        new.level,
        project_name.as_deref(),
        &new.permissions,
    )
    .await?;
    let secret = password::generate();
    let hash = password::hash_blocking(&secret).await?;
    let expires_at = expiry(Utc::now(), new.duration_days);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO robots (name, project_id, description, secret_hash, duration_days,
                             expires_at, disabled, creator_type, creator_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&stored_name)
    .bind(project_id)
    .bind(&new.description)
    .bind(&hash)
    .bind(new.duration_days)
    .bind(expires_at)
    .bind(new.disabled)
    .bind(&new.creator_type)
    .bind(new.creator_ref)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "robots_name_key") {
            Error::Conflict(format!("robot account {stored_name} already exists"))
        } else {
            Error::Database(e)
        }
    })?;
    save_permissions(&mut tx, id, &permissions).await?;
    let robot = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(CreatedRobot { robot, secret })
}

fn expiry(from: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
    (days > 0).then(|| from + Duration::days(days))
}

async fn save_permissions(
    conn: &mut PgConnection,
    robot_id: i64,
    permissions: &[RobotPermission],
) -> Result<()> {
    sqlx::query("DELETE FROM robot_permissions WHERE robot_id = $1")
        .bind(robot_id)
        .execute(&mut *conn)
        .await?;
    let mut position = 0i32;
    for permission in permissions {
        for access in &permission.access {
            sqlx::query(
                "INSERT INTO robot_permissions
                     (robot_id, kind, namespace, project_id, resource, action, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(robot_id)
            .bind(permission.kind.as_str())
            .bind(&permission.namespace)
            .bind(permission.project_id)
            .bind(&access.resource)
            .bind(&access.action)
            .bind(position)
            .execute(&mut *conn)
            .await?;
            position += 1;
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RobotRow {
    id: i64,
    name: String,
    project_id: Option<i64>,
    description: String,
    duration_days: i64,
    expires_at: Option<DateTime<Utc>>,
    disabled: bool,
    creator_type: String,
    creator_ref: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const ROBOT_COLUMNS: &str = "id, name, project_id, description, duration_days, expires_at, \
     disabled, creator_type, creator_ref, created_at, updated_at";

async fn attach_permissions(conn: &mut PgConnection, rows: Vec<RobotRow>) -> Result<Vec<Robot>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let grants: Vec<(i64, String, String, Option<i64>, String, String)> = sqlx::query_as(
        "SELECT robot_id, kind, namespace, project_id, resource, action
         FROM robot_permissions WHERE robot_id = ANY($1) ORDER BY robot_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut robots = Vec::with_capacity(rows.len());
    for row in rows {
        let mut permissions: Vec<RobotPermission> = Vec::new();
        for (_, kind, namespace, project_id, resource, action) in
            grants.iter().filter(|g| g.0 == row.id)
        {
            let kind = PermissionKind::parse(kind)
                .map_err(|_| Error::Internal(format!("unknown permission kind {kind:?}")))?;
            let access = RobotAccess {
                resource: resource.clone(),
                action: action.clone(),
            };
            match permissions
                .iter_mut()
                .find(|p| p.kind == kind && &p.namespace == namespace)
            {
                Some(p) => p.access.push(access),
                None => permissions.push(RobotPermission {
                    kind,
                    namespace: namespace.clone(),
                    project_id: *project_id,
                    access: vec![access],
                }),
            }
        }
        robots.push(Robot {
            id: row.id,
            name: row.name,
            project_id: row.project_id,
            description: row.description,
            duration_days: row.duration_days,
            expires_at: row.expires_at,
            disabled: row.disabled,
            creator_type: row.creator_type,
            creator_ref: row.creator_ref,
            permissions,
            created_at: row.created_at,
            updated_at: row.updated_at,
        });
    }
    Ok(robots)
}

async fn load(conn: &mut PgConnection, id: i64) -> Result<Robot> {
    let row = sqlx::query_as::<_, RobotRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ROBOT_COLUMNS} FROM robots WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    attach_permissions(conn, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound)
}

/// The robot with this id.
pub async fn get_robot(db: impl Acquire<'_, Database = Postgres>, id: i64) -> Result<Robot> {
    let mut conn = db.acquire().await?;
    load(&mut conn, id).await
}

/// The robot with this stored name (`ci`, `<project>+ci`; without the login
/// prefix), whatever its state: callers check `disabled` and expiry.
pub async fn get_robot_by_name(
    db: impl Acquire<'_, Database = Postgres>,
    name: &str,
) -> Result<Robot> {
    let mut conn = db.acquire().await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM robots WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    load(&mut conn, id).await
}

/// Check a robot's login name (with `prefix`) and secret. `Ok(None)` when no
/// such robot exists or the secret is wrong; a disabled or expired robot is
/// returned so the caller can say why it was refused (after the secret
/// matched, so nobody learns that from a guess).
pub async fn authenticate_robot(
    db: impl Acquire<'_, Database = Postgres>,
    prefix: &str,
    login_name: &str,
    secret: &str,
) -> Result<Option<Robot>> {
    let Some(name) = login_name.strip_prefix(prefix) else {
        return Ok(None);
    };
    let mut conn = db.acquire().await?;
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, secret_hash FROM robots WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((id, hash)) = row else {
        // Spend the same time as a real check.
        let _ = password::verify_blocking(secret, crate::users::dummy_hash()).await;
        return Ok(None);
    };
    if !password::verify_blocking(secret, &hash).await {
        return Ok(None);
    }
    Ok(Some(load(&mut conn, id).await?))
}

/// Robots one page at a time, in the order asked for (by id by default).
pub async fn list_robots(
    db: impl Acquire<'_, Database = Postgres>,
    query: &RobotQuery,
) -> Result<Listing<Robot>> {
    let mut conn = db.acquire().await?;
    let level = query.level.map(|l| l == RobotLevel::Project);
    let pattern = query
        .name_contains
        .as_deref()
        .map(|s| format!("%{}%", crate::users::escape_like(s)));
    let (limit, offset) = query.page.limit_offset();
    let filter = "($1::bool IS NULL OR (project_id IS NOT NULL) = $1)
                  AND ($2::bigint IS NULL OR project_id = $2)
                  AND ($3::text IS NULL OR name LIKE $3)
                  AND ($4::text IS NULL OR name = $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM robots WHERE {filter}"
    )))
    .bind(level)
    .bind(query.project_id)
    .bind(&pattern)
    .bind(&query.name)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|s| {
            let direction = if s.descending { "DESC" } else { "ASC" };
            format!("{} {direction}", s.key.column())
        })
        .collect();
    order.push("id ASC".to_owned());
    let order = order.join(", ");
    let rows = sqlx::query_as::<_, RobotRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ROBOT_COLUMNS} FROM robots WHERE {filter} ORDER BY {order} LIMIT $5 OFFSET $6"
    )))
    .bind(level)
    .bind(query.project_id)
    .bind(&pattern)
    .bind(&query.name)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let items = attach_permissions(&mut conn, rows).await?;
    Ok(Listing { items, total })
}

/// Change a robot's description, lifetime (counted from its creation, as in
/// Harbor), disabled flag and permissions.
pub async fn update_robot(
    db: impl Acquire<'_, Database = Postgres>,
    id: i64,
    update: &RobotUpdate,
) -> Result<Robot> {
    check_duration(update.duration_days)?;
    let mut tx = db.begin().await?;
    let current = load(&mut tx, id).await?;
    let project_name = match current.project_id {
        Some(_) => current.name.split_once('+').map(|(p, _)| p.to_owned()),
        None => None,
    };
    let permissions = resolve_permissions(
        &mut tx,
        current.level(),
        project_name.as_deref(),
        &update.permissions,
    )
    .await?;
    sqlx::query(
        "UPDATE robots SET description = $2, duration_days = $3, expires_at = $4,
                           disabled = $5, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&update.description)
    .bind(update.duration_days)
    .bind(expiry(current.created_at, update.duration_days))
    .bind(update.disabled)
    .execute(&mut *tx)
    .await?;
    save_permissions(&mut tx, id, &permissions).await?;
    let robot = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(robot)
}

/// Replace a robot's secret: a generated one when `secret` is `None`
/// (returned, to show once), or the caller's own (policy checked; nothing is
/// returned).
pub async fn refresh_secret(
    db: impl PgExecutor<'_>,
    id: i64,
    secret: Option<&str>,
) -> Result<Option<String>> {
    let (plain, generated) = match secret {
        Some(own) => {
            password::check_policy(own).map_err(|e| match e {
                Error::Invalid(msg) => Error::Invalid(msg.replace("password", "secret")),
                other => other,
            })?;
            (own.to_owned(), None)
        }
        None => {
            let generated = password::generate();
            (generated.clone(), Some(generated))
        }
    };
    let hash = password::hash_blocking(&plain).await?;
    let done = sqlx::query("UPDATE robots SET secret_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(generated)
}

/// Delete a robot for good.
pub async fn delete_robot(db: impl PgExecutor<'_>, id: i64) -> Result<()> {
    let done = sqlx::query("DELETE FROM robots WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
