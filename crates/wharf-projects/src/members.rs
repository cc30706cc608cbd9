//! Project membership: which users hold which role in a project. Only user
//! members (`entity_type = 'u'`) exist today; group members come with LDAP
//! and OIDC groups.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgExecutor, Postgres};

use crate::error::{Error, Result};
use crate::roles::Role;

/// A user's membership in a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The membership's own id (Harbor's `mid`).
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The member user.
    pub user_id: i64,
    /// The member's username.
    pub username: String,
    /// The role held.
    pub role: Role,
    /// When the membership was created.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: i64,
    project_id: i64,
    user_id: i64,
    username: String,
    role: i16,
    created_at: DateTime<Utc>,
}

fn role_from_db(id: i16) -> Result<Role> {
    Role::from_id(id)
        .ok_or_else(|| Error::Internal(format!("unknown role id {id} in project_members")))
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;

    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Member {
            id: row.id,
            project_id: row.project_id,
            user_id: row.user_id,
            username: row.username,
            role: role_from_db(row.role)?,
            created_at: row.created_at,
        })
    }
}

/// Make a live user a member of a live project and return the membership
/// id. A missing user or project is [`Error::NotFound`]; an existing
/// membership is a [`Error::Conflict`].
pub async fn add_member(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
    user_id: i64,
    role: Role,
) -> Result<i64> {
    let mut tx = db.begin().await?;
    let both_exist: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND NOT deleted)
            AND EXISTS (SELECT 1 FROM users WHERE id = $2 AND NOT deleted)",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if !both_exist {
        return Err(Error::NotFound);
    }
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO project_members (project_id, entity_id, entity_type, role)
         VALUES ($1, $2, 'u', $3)
         ON CONFLICT (project_id, entity_id, entity_type) DO NOTHING
         RETURNING id",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.id())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        return Err(Error::Conflict(format!(
            "user {user_id} is already a member of project {project_id}"
        )));
    };
    tx.commit().await?;
    Ok(id)
}

/// The membership `member_id` of project `project_id`.
pub async fn get_member(
    db: impl PgExecutor<'_>,
    project_id: i64,
    member_id: i64,
) -> Result<Member> {
    sqlx::query_as::<_, MemberRow>(
        "SELECT pm.id, pm.project_id, pm.entity_id AS user_id, u.username, pm.role, pm.created_at
         FROM project_members pm JOIN users u ON u.id = pm.entity_id AND NOT u.deleted
         WHERE pm.project_id = $1 AND pm.id = $2 AND pm.entity_type = 'u'",
    )
    .bind(project_id)
    .bind(member_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
    .and_then(Member::try_from)
}

/// Change a member's role.
pub async fn update_member_role(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
    role: Role,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE project_members SET role = $3, updated_at = now()
         WHERE project_id = $1 AND entity_type = 'u' AND entity_id = $2",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.id())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// End a membership.
pub async fn remove_member(db: impl PgExecutor<'_>, project_id: i64, user_id: i64) -> Result<()> {
    let done = sqlx::query(
        "DELETE FROM project_members WHERE project_id = $1 AND entity_type = 'u' AND entity_id = $2",
    )
    .bind(project_id)
    .bind(user_id)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// The members of a project, by username.
pub async fn list_members(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<Member>> {
    sqlx::query_as::<_, MemberRow>(
        "SELECT pm.id, pm.project_id, pm.entity_id AS user_id, u.username, pm.role, pm.created_at
         FROM project_members pm JOIN users u ON u.id = pm.entity_id AND NOT u.deleted
         WHERE pm.project_id = $1 AND pm.entity_type = 'u'
         ORDER BY u.username",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(Member::try_from)
    .collect()
}

/// The roles `user_id` holds in `project_id` (empty for non-members). With
/// group memberships this becomes several; [`crate::allowed`] takes the union.
pub async fn member_roles(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
) -> Result<Vec<Role>> {
    let ids: Vec<i16> = sqlx::query_scalar(
        "SELECT role FROM project_members
         WHERE project_id = $1 AND entity_type = 'u' AND entity_id = $2
         ORDER BY role",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_all(db)
    .await?;
    ids.into_iter().map(role_from_db).collect()
}

/// Filter and page for [`search_members`].
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    /// Only members whose name contains this text (case-insensitive).
    pub entity_name_contains: Option<String>,
    /// Which page.
    pub page: crate::Page,
}

/// The members of a project matching `query`, by username, one page at a time.
pub async fn search_members(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
    query: &MemberQuery,
) -> Result<crate::Listing<Member>> {
    let mut conn = db.acquire().await?;
    let pattern = query
        .entity_name_contains
        .as_deref()
        .map(|s| format!("%{}%", crate::users::escape_like(s)));
    let (limit, offset) = query.page.limit_offset();
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*)
         FROM project_members pm JOIN users u ON u.id = pm.entity_id AND NOT u.deleted
         WHERE pm.project_id = $1 AND pm.entity_type = 'u'
           AND ($2::text IS NULL OR u.username ILIKE $2)",
    )
    .bind(project_id)
    .bind(&pattern)
    .fetch_one(&mut *conn)
    .await?;
    let items = sqlx::query_as::<_, MemberRow>(
        "SELECT pm.id, pm.project_id, pm.entity_id AS user_id, u.username, pm.role, pm.created_at
         FROM project_members pm JOIN users u ON u.id = pm.entity_id AND NOT u.deleted
         WHERE pm.project_id = $1 AND pm.entity_type = 'u'
           AND ($2::text IS NULL OR u.username ILIKE $2)
         ORDER BY u.username, pm.id LIMIT $3 OFFSET $4",
    )
    .bind(project_id)
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(Member::try_from)
    .collect::<Result<Vec<_>>>()?;
    Ok(crate::Listing { items, total })
}

/// Change the role of membership `member_id` in project `project_id`.
pub async fn update_member_role_by_id(
    db: impl PgExecutor<'_>,
    project_id: i64,
    member_id: i64,
    role: Role,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE project_members SET role = $3, updated_at = now()
         WHERE project_id = $1 AND id = $2",
    )
    .bind(project_id)
    .bind(member_id)
    .bind(role.id())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// End membership `member_id` of project `project_id`.
pub async fn remove_member_by_id(
    db: impl PgExecutor<'_>,
    project_id: i64,
    member_id: i64,
) -> Result<()> {
    let done = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND id = $2")
        .bind(project_id)
        .bind(member_id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// How many live members hold each role in a project (roles nobody holds
/// are absent).
pub async fn member_role_counts(
    db: impl PgExecutor<'_>,
    project_id: i64,
) -> Result<std::collections::BTreeMap<Role, i64>> {
    let rows: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT pm.role, count(*)
         FROM project_members pm JOIN users u ON u.id = pm.entity_id AND NOT u.deleted
         WHERE pm.project_id = $1 AND pm.entity_type = 'u'
         GROUP BY pm.role",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(role, count)| Ok((role_from_db(role)?, count)))
        .collect()
}

/// The roles `user_id` holds in each of `project_ids` (projects where the
/// user is no member are absent), for listings that show the caller's role.
pub async fn roles_in_projects(
    db: impl PgExecutor<'_>,
    user_id: i64,
    project_ids: &[i64],
) -> Result<std::collections::BTreeMap<i64, Vec<Role>>> {
    let rows: Vec<(i64, i16)> = sqlx::query_as(
        "SELECT project_id, role FROM project_members
         WHERE entity_type = 'u' AND entity_id = $1 AND project_id = ANY($2)
         ORDER BY project_id, role",
    )
    .bind(user_id)
    .bind(project_ids)
    .fetch_all(db)
    .await?;
    let mut by_project: std::collections::BTreeMap<i64, Vec<Role>> = Default::default();
    for (project_id, role) in rows {
        by_project
            .entry(project_id)
            .or_default()
            .push(role_from_db(role)?);
    }
    Ok(by_project)
}
