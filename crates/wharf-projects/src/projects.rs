//! Projects: creation with Harbor's name rule and the owner as project
//! admin, the metadata map (`public`, `auto_scan`, ...), the storage limit,
//! listing by visibility, soft deletion, and the `library` project.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection, PgExecutor, Postgres};

use crate::error::{Error, Result, is_unique_violation};
use crate::names::ProjectName;
use crate::roles::Role;
use crate::users::{ADMIN, escape_like, get_user_by_name};
use crate::{Listing, Page};

/// The public project created at first start.
pub const LIBRARY: &str = "library";

/// Metadata keys Wharf accepts and the values each takes. Booleans are the
/// strings `"true"`/`"false"`, as in Harbor's API.
const METADATA_KEYS: &[(&str, MetadataKind)] = &[
    ("public", MetadataKind::Bool),
    ("auto_scan", MetadataKind::Bool),
    ("auto_sbom_generation", MetadataKind::Bool),
    ("prevent_vul", MetadataKind::Bool),
    ("severity", MetadataKind::Severity),
    ("reuse_sys_cve_allowlist", MetadataKind::Bool),
    ("enable_content_trust", MetadataKind::Bool),
    ("enable_content_trust_cosign", MetadataKind::Bool),
];

#[derive(Debug, Clone, Copy)]
enum MetadataKind {
    Bool,
    Severity,
}

/// Check one metadata entry: a known key with a value of the right kind.
pub fn validate_metadata(key: &str, value: &str) -> Result<()> {
    let Some(&(_, kind)) = METADATA_KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(Error::Invalid(format!(
            "unknown project metadata key {key:?}"
        )));
    };
    let ok = match kind {
        MetadataKind::Bool => matches!(value, "true" | "false"),
        MetadataKind::Severity => {
            matches!(value, "none" | "low" | "medium" | "high" | "critical")
        }
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            MetadataKind::Bool => "\"true\" or \"false\"",
            MetadataKind::Severity => "one of none, low, medium, high, critical",
        };
        Err(Error::Invalid(format!(
            "project metadata {key} must be {expected}, not {value:?}"
        )))
    }
}

/// A live project with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Database id (Harbor's `project_id`).
    pub id: i64,
    /// The project name, the first path segment of its repositories.
    pub name: String,
    /// The user who created the project.
    pub owner_id: i64,
    /// The owner's username.
    pub owner_name: String,
    /// Storage quota in bytes; -1 is unlimited.
    pub storage_limit: i64,
    /// Harbor's metadata map (`public`, `auto_scan`, ...).
    pub metadata: BTreeMap<String, String>,
    /// The replication endpoint this project is a pull-through cache of.
    pub registry_id: Option<i64>,
    /// When the project was created.
    pub created_at: DateTime<Utc>,
    /// When the project last changed.
    pub updated_at: DateTime<Utc>,
}

impl Project {
    /// Whether anyone, anonymous visitors included, may pull from it.
    pub fn is_public(&self) -> bool {
        self.metadata.get("public").is_some_and(|v| v == "true")
    }
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: i64,
    name: String,
    owner_id: i64,
    owner_name: String,
    storage_limit: i64,
    registry_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What is needed to create a project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// The validated name.
    pub name: ProjectName,
    /// The creating user; becomes the owner and a project admin.
    pub owner_id: i64,
    /// Whether the project is public (stored as metadata `public`).
    pub public: bool,
    /// Further metadata; a `public` entry here is overridden by `public`.
    pub metadata: BTreeMap<String, String>,
    /// Storage quota in bytes; -1 is unlimited.
    pub storage_limit: i64,
    /// Make it a proxy cache of this replication endpoint.
    pub registry_id: Option<i64>,
}

impl NewProject {
    /// A private project with no extra metadata and no quota.
    pub fn new(name: ProjectName, owner_id: i64) -> Self {
        NewProject {
            name,
            owner_id,
            public: false,
            metadata: BTreeMap::new(),
            storage_limit: -1,
            registry_id: None,
        }
    }
}

fn check_storage_limit(limit: i64) -> Result<()> {
    if limit < -1 {
        return Err(Error::Invalid(
            "storage limit must be -1 (unlimited) or a number of bytes".into(),
        ));
    }
    Ok(())
}

/// Create a project, its metadata and the owner's projectAdmin membership in
/// one transaction. A taken name is a [`Error::Conflict`] with Harbor's text.
pub async fn create_project(
    db: impl Acquire<'_, Database = Postgres>,
    new: &NewProject,
) -> Result<Project> {
    check_storage_limit(new.storage_limit)?;
    let mut metadata = new.metadata.clone();
    metadata.insert("public".into(), new.public.to_string());
    for (key, value) in &metadata {
        validate_metadata(key, value)?;
    }
    let mut tx = db.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO projects (name, owner_id, storage_limit, registry_id)
         SELECT $1, id, $3, $4 FROM users WHERE id = $2 AND NOT deleted
         RETURNING id",
    )
    .bind(new.name.as_str())
    .bind(new.owner_id)
    .bind(new.storage_limit)
    .bind(new.registry_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "projects_name_live") {
            Error::Conflict(format!("The project named {} already exists", new.name))
        } else if let sqlx::Error::Database(d) = &e
            && d.is_foreign_key_violation()
        {
            // Only `registry_id` can miss: the owner is checked by the SELECT.
            Error::Invalid(format!(
                "registry {} not found: a proxy cache project mirrors an existing registry \
                 endpoint (POST /api/v2.0/registries)",
                new.registry_id.unwrap_or_default()
            ))
        } else {
            Error::Database(e)
        }
    })?
    .ok_or_else(|| Error::Invalid(format!("owner {} does not exist", new.owner_id)))?;
    upsert_metadata(&mut tx, id, &metadata).await?;
    sqlx::query(
        "INSERT INTO project_members (project_id, entity_id, entity_type, role)
         VALUES ($1, $2, 'u', $3)",
    )
    .bind(id)
    .bind(new.owner_id)
    .bind(Role::ProjectAdmin.id())
    .execute(&mut *tx)
    .await?;
    let project = load(&mut tx, ProjectKey::Id(id)).await?;
    tx.commit().await?;
    Ok(project)
}

enum ProjectKey<'a> {
    Id(i64),
    Name(&'a str),
}

async fn load(conn: &mut PgConnection, key: ProjectKey<'_>) -> Result<Project> {
    let (id, name) = match key {
        ProjectKey::Id(id) => (Some(id), None),
        ProjectKey::Name(name) => (None, Some(name)),
    };
    let row = sqlx::query_as::<_, ProjectRow>(
        "SELECT p.id, p.name, p.owner_id, u.username AS owner_name, p.storage_limit, p.registry_id,
                p.created_at, p.updated_at
         FROM projects p JOIN users u ON u.id = p.owner_id
         WHERE NOT p.deleted AND (p.id = $1 OR p.name = $2)",
    )
    .bind(id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let mut projects = attach_metadata(conn, vec![row]).await?;
    projects.pop().ok_or(Error::NotFound)
}

async fn attach_metadata(conn: &mut PgConnection, rows: Vec<ProjectRow>) -> Result<Vec<Project>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let entries: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT project_id, name, value FROM project_metadata WHERE project_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_project: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    for (project_id, name, value) in entries {
        by_project
            .entry(project_id)
            .or_default()
            .insert(name, value);
    }
    Ok(rows
        .into_iter()
        .map(|row| Project {
            metadata: by_project.remove(&row.id).unwrap_or_default(),
            id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            owner_name: row.owner_name,
            storage_limit: row.storage_limit,
            registry_id: row.registry_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

async fn upsert_metadata(
    conn: &mut PgConnection,
    project_id: i64,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    for (key, value) in metadata {
        sqlx::query(
            "INSERT INTO project_metadata (project_id, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        )
        .bind(project_id)
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The live project with this id.
pub async fn get_project(db: impl Acquire<'_, Database = Postgres>, id: i64) -> Result<Project> {
    let mut conn = db.acquire().await?;
    load(&mut conn, ProjectKey::Id(id)).await
}

/// The live project with this name.
pub async fn get_project_by_name(
    db: impl Acquire<'_, Database = Postgres>,
    name: &str,
) -> Result<Project> {
    let mut conn = db.acquire().await?;
    load(&mut conn, ProjectKey::Name(name)).await
}

/// Which projects a listing may show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Visibility {
    /// Every project (system administrators).
    #[default]
    All,
    /// Public projects and those the user is a member of.
    User(i64),
    /// Public projects only (anonymous visitors).
    PublicOnly,
}

/// Filter and page for [`list_projects`].
#[derive(Debug, Clone, Default)]
pub struct ProjectQuery {
    /// Who is looking.
    pub visibility: Visibility,
    /// Only projects whose name contains this text.
    pub name_contains: Option<String>,
    /// Only public (`Some(true)`) or private (`Some(false)`) projects.
    pub public: Option<bool>,
    /// Which page.
    pub page: Page,
}

/// Live projects ordered by name, one page at a time.
pub async fn list_projects(
    db: impl Acquire<'_, Database = Postgres>,
    query: &ProjectQuery,
) -> Result<Listing<Project>> {
    let mut conn = db.acquire().await?;
    let (see_all, member_of) = match query.visibility {
        Visibility::All => (true, None),
        Visibility::User(id) => (false, Some(id)),
        Visibility::PublicOnly => (false, None),
    };
    let pattern = query
        .name_contains
        .as_deref()
        .map(|s| format!("%{}%", escape_like(s)));
    let (limit, offset) = query.page.limit_offset();
    // Both queries share one WHERE clause: $1 sees everything, $2 is the
    // member whose projects are visible, $3 a name pattern, $4 public or not.
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*)
         FROM projects p
         LEFT JOIN project_metadata m ON m.project_id = p.id AND m.name = 'public'
         WHERE NOT p.deleted AND ($3::text IS NULL OR p.name LIKE $3)
           AND ($4::bool IS NULL OR COALESCE(m.value = 'true', false) = $4)
           AND ($1 OR COALESCE(m.value = 'true', false) OR EXISTS (
                SELECT 1 FROM project_members pm
                WHERE pm.project_id = p.id AND pm.entity_type = 'u' AND pm.entity_id = $2))",
    )
    .bind(see_all)
    .bind(member_of)
    .bind(&pattern)
    .bind(query.public)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as::<_, ProjectRow>(
        "SELECT p.id, p.name, p.owner_id, u.username AS owner_name, p.storage_limit, p.registry_id,
                p.created_at, p.updated_at
         FROM projects p
         JOIN users u ON u.id = p.owner_id
         LEFT JOIN project_metadata m ON m.project_id = p.id AND m.name = 'public'
         WHERE NOT p.deleted AND ($3::text IS NULL OR p.name LIKE $3)
           AND ($4::bool IS NULL OR COALESCE(m.value = 'true', false) = $4)
           AND ($1 OR COALESCE(m.value = 'true', false) OR EXISTS (
                SELECT 1 FROM project_members pm
                WHERE pm.project_id = p.id AND pm.entity_type = 'u' AND pm.entity_id = $2))
         ORDER BY p.name LIMIT $5 OFFSET $6",
    )
    .bind(see_all)
    .bind(member_of)
    .bind(&pattern)
    .bind(query.public)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let items = attach_metadata(&mut conn, rows).await?;
    Ok(Listing { items, total })
}

/// Add or replace metadata entries (each key and value validated).
pub async fn set_metadata(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
    metadata: &BTreeMap<String, String>,
) -> Result<Project> {
    for (key, value) in metadata {
        validate_metadata(key, value)?;
    }
    let mut tx = db.begin().await?;
    touch(&mut tx, project_id).await?;
    upsert_metadata(&mut tx, project_id, metadata).await?;
    let project = load(&mut tx, ProjectKey::Id(project_id)).await?;
    tx.commit().await?;
    Ok(project)
}

/// Remove one metadata entry; removing an absent key is [`Error::NotFound`].
pub async fn delete_metadata(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
    key: &str,
) -> Result<()> {
    let mut tx = db.begin().await?;
    touch(&mut tx, project_id).await?;
    let done = sqlx::query("DELETE FROM project_metadata WHERE project_id = $1 AND name = $2")
        .bind(project_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

/// Bump `updated_at` of a live project, or fail with NotFound.
async fn touch(conn: &mut PgConnection, project_id: i64) -> Result<()> {
    let done = sqlx::query("UPDATE projects SET updated_at = now() WHERE id = $1 AND NOT deleted")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Set the storage quota in bytes (-1 for unlimited).
pub async fn set_storage_limit(db: impl PgExecutor<'_>, project_id: i64, limit: i64) -> Result<()> {
    check_storage_limit(limit)?;
    let done = sqlx::query(
        "UPDATE projects SET storage_limit = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
    )
    .bind(project_id)
    .bind(limit)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Soft-delete a project and drop its members. As in Harbor, a project that
/// still holds repositories cannot be deleted ([`Error::Conflict`]).
pub async fn delete_project(
    db: impl Acquire<'_, Database = Postgres>,
    project_id: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let name: String =
        sqlx::query_scalar("SELECT name FROM projects WHERE id = $1 AND NOT deleted FOR UPDATE")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
    let has_repositories: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM repositories WHERE project = $1)")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
    if has_repositories {
        return Err(Error::Conflict(
            "the project contains repositories, can not be deleted".into(),
        ));
    }
    sqlx::query("UPDATE projects SET deleted = true, updated_at = now() WHERE id = $1")
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM project_members WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    // As in Harbor, the project's robots go with it.
    sqlx::query("DELETE FROM robots WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Make sure the public `library` project exists, owned by `admin` (call
/// after [`crate::ensure_admin`]). Returns it, created or not. A `library`
/// that an operator made private stays private.
pub async fn ensure_library_project(db: impl Acquire<'_, Database = Postgres>) -> Result<Project> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('wharf-projects:ensure_library'))")
        .execute(&mut *tx)
        .await?;
    let project = match load(&mut tx, ProjectKey::Name(LIBRARY)).await {
        Ok(existing) => existing,
        Err(Error::NotFound) => {
            let admin = get_user_by_name(&mut *tx, ADMIN).await?;
            let mut new = NewProject::new(ProjectName::parse(LIBRARY)?, admin.id);
            new.public = true;
            create_project(&mut *tx, &new).await?
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    Ok(project)
}

/// A column projects can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectSort {
    Id,
    Name,
    CreationTime,
    UpdateTime,
}

impl ProjectSort {
    fn column(self) -> &'static str {
        match self {
            ProjectSort::Id => "p.id",
            ProjectSort::Name => "p.name",
            ProjectSort::CreationTime => "p.created_at",
            ProjectSort::UpdateTime => "p.updated_at",
        }
    }
}

/// Who sees which projects, the filters, order and page for
/// [`search_projects`] (Harbor's `GET /projects`). Public projects are
/// always visible; `see_all`, `member` and `granted` add the others.
#[derive(Debug, Clone, Default)]
pub struct ProjectSearch {
    /// Every project is visible (system administrators, robots covering `*`).
    pub see_all: bool,
    /// Projects this user is a member of are visible.
    pub member: Option<i64>,
    /// These projects are visible (a robot's granted projects).
    pub granted: Vec<i64>,
    /// Match on the project name.
    pub name: Option<crate::users::TextMatch>,
    /// Only public (`Some(true)`) or private (`Some(false)`) projects.
    pub public: Option<bool>,
    /// Only projects owned by this username.
    pub owner: Option<String>,
    /// Only these project ids.
    pub ids: Option<Vec<i64>>,
    /// Sort keys, each with `true` for descending; ties and an empty list
    /// fall back to the name.
    pub sort: Vec<(ProjectSort, bool)>,
    /// Which page.
    pub page: Page,
}

/// Live projects visible under `search` and matching its filters.
pub async fn search_projects(
    db: impl Acquire<'_, Database = Postgres>,
    search: &ProjectSearch,
) -> Result<Listing<Project>> {
    use crate::users::TextMatch;
    let mut conn = db.acquire().await?;
    let (limit, offset) = search.page.limit_offset();
    // $1 sees all, $2 member user, $3 granted ids, $4/$5 name exact/pattern,
    // $6 public, $7 owner name, $8 id list.
    let filter = "NOT p.deleted
          AND ($1 OR COALESCE(m.value = 'true', false) OR p.id = ANY($3) OR EXISTS (
                SELECT 1 FROM project_members pm
                WHERE pm.project_id = p.id AND pm.entity_type = 'u' AND pm.entity_id = $2))
          AND ($4::text IS NULL OR p.name = $4)
          AND ($5::text IS NULL OR p.name LIKE $5)
          AND ($6::bool IS NULL OR COALESCE(m.value = 'true', false) = $6)
          AND ($7::text IS NULL OR u.username = $7)
          AND ($8::bigint[] IS NULL OR p.id = ANY($8))";
    let from = "projects p
         JOIN users u ON u.id = p.owner_id
         LEFT JOIN project_metadata m ON m.project_id = p.id AND m.name = 'public'";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {from} WHERE {filter}"
    )))
    .bind(search.see_all)
    .bind(search.member)
    .bind(&search.granted)
    .bind(TextMatch::exact(search.name.as_ref()))
    .bind(TextMatch::pattern(search.name.as_ref()))
    .bind(search.public)
    .bind(&search.owner)
    .bind(&search.ids)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = search
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("p.name ASC".into());
    let rows = sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(format!(
        "SELECT p.id, p.name, p.owner_id, u.username AS owner_name, p.storage_limit, p.registry_id,
                p.created_at, p.updated_at
         FROM {from} WHERE {filter}
         ORDER BY {} LIMIT $9 OFFSET $10",
        order.join(", ")
    )))
    .bind(search.see_all)
    .bind(search.member)
    .bind(&search.granted)
    .bind(TextMatch::exact(search.name.as_ref()))
    .bind(TextMatch::pattern(search.name.as_ref()))
    .bind(search.public)
    .bind(&search.owner)
    .bind(&search.ids)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let items = attach_metadata(&mut conn, rows).await?;
    Ok(Listing { items, total })
}

/// How many repositories each of these projects holds (by project name;
/// projects without repositories are absent from the map).
pub async fn repository_counts(
    db: impl PgExecutor<'_>,
    project_names: &[String],
) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT project, count(*) FROM repositories WHERE project = ANY($1) GROUP BY project",
    )
    .bind(project_names)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// How many repositories the project named `project_name` holds.
pub async fn repository_count(db: impl PgExecutor<'_>, project_name: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM repositories WHERE project = $1")
            .bind(project_name)
            .fetch_one(db)
            .await?,
    )
}

/// The bytes stored in the whole instance: every distinct blob once,
/// however many repositories and projects share it.
pub async fn total_blob_bytes(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(sum(size), 0)::bigint FROM blobs")
            .fetch_one(db)
            .await?,
    )
}
