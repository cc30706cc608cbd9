//! Labels, as in Harbor: global labels (managed by system administrators,
//! attachable to any artifact) and project labels (managed in one project,
//! attachable only to that project's artifacts), and their attachment to
//! artifacts. An artifact is a row of the registry's `manifests` table (one
//! per manifest per repository); its id is the artifact id.
//!
//! Who may do what is the caller's business (the HTTP layer): these
//! functions enforce only what the data itself requires — unique names per
//! scope, a project label staying inside its project, no double attachment.
//!
//! Projects are soft-deleted, so the labels of a deleted project stay in the
//! table; every read here joins live projects, which makes them vanish with
//! their project.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgExecutor, Postgres};

use crate::error::{Error, Result, is_unique_violation};
use crate::users::TextMatch;
use crate::{Listing, Page};

/// The longest label name Harbor accepts.
pub const MAX_NAME_LEN: usize = 128;

/// The longest colour string accepted (Harbor's column width).
pub const MAX_COLOR_LEN: usize = 16;

/// Where a label lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelScope {
    /// System-wide (Harbor scope `g`).
    Global,
    /// In the project with this id (Harbor scope `p`).
    Project(i64),
}

impl LabelScope {
    /// Harbor's scope letter: `g` or `p`.
    pub fn code(self) -> &'static str {
        match self {
            LabelScope::Global => "g",
            LabelScope::Project(_) => "p",
        }
    }

    /// The project of a project label.
    pub fn project_id(self) -> Option<i64> {
        match self {
            LabelScope::Global => None,
            LabelScope::Project(id) => Some(id),
        }
    }
}

/// A stored label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Database id (Harbor's `id`, `label_id` in paths).
    pub id: i64,
    /// Unique among global labels, or within its project.
    pub name: String,
    /// Free text.
    pub description: String,
    /// A colour for the console, usually `#RRGGBB`.
    pub color: String,
    /// Global or which project.
    pub scope: LabelScope,
    /// When the label was created.
    pub created_at: DateTime<Utc>,
    /// When the label last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LabelRow {
    id: i64,
    name: String,
    description: String,
    color: String,
    project_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<LabelRow> for Label {
    fn from(row: LabelRow) -> Self {
        Label {
            id: row.id,
            name: row.name,
            description: row.description,
            color: row.color,
            scope: row
                .project_id
                .map_or(LabelScope::Global, LabelScope::Project),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The columns of [`LabelRow`] from `labels l`.
const COLUMNS: &str =
    "l.id, l.name, l.description, l.color, l.project_id, l.created_at, l.updated_at";

/// Only labels that are global or belong to a live project.
const LIVE: &str = "(l.project_id IS NULL OR EXISTS (
        SELECT 1 FROM projects lp WHERE lp.id = l.project_id AND NOT lp.deleted))";

/// The editable text of a label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelText {
    /// 1 to [`MAX_NAME_LEN`] characters, no control characters.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Up to [`MAX_COLOR_LEN`] characters.
    pub color: String,
}

impl LabelText {
    /// Check the name and colour ([`Error::Invalid`] says what is wrong).
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::Invalid("label name cannot be empty".into()));
        }
        if self.name.chars().count() > MAX_NAME_LEN {
            return Err(Error::Invalid(format!(
                "label name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        if self.name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "label name cannot contain control characters".into(),
            ));
        }
        if self.color.chars().count() > MAX_COLOR_LEN {
            return Err(Error::Invalid(format!(
                "label color is longer than {MAX_COLOR_LEN} characters"
            )));
        }
        Ok(())
    }
}

fn conflict(text: &LabelText, scope: LabelScope) -> Error {
    match scope {
        LabelScope::Global => {
            Error::Conflict(format!("a global label named {} already exists", text.name))
        }
        LabelScope::Project(_) => Error::Conflict(format!(
            "a label named {} already exists in the project",
            text.name
        )),
    }
}

fn map_unique(e: sqlx::Error, text: &LabelText, scope: LabelScope) -> Error {
    if is_unique_violation(&e, "labels_global_name")
        || is_unique_violation(&e, "labels_project_name")
    {
        conflict(text, scope)
    } else {
        Error::Database(e)
    }
}

/// Create a label. A name already used in the scope is [`Error::Conflict`];
/// a project label for a project that does not exist (or is deleted) is
/// [`Error::NotFound`].
pub async fn create_label(
    db: impl PgExecutor<'_>,
    text: &LabelText,
    scope: LabelScope,
) -> Result<Label> {
    text.validate()?;
    // The SELECT yields no row for a missing project, so the insert does
    // nothing rather than point at a dead project.
    let row = sqlx::query_as::<_, LabelRow>(
        "INSERT INTO labels (name, description, color, scope, project_id)
         SELECT $1, $2, $3, $4, $5
         WHERE $5::bigint IS NULL
            OR EXISTS (SELECT 1 FROM projects WHERE id = $5 AND NOT deleted)
         RETURNING id, name, description, color, project_id, created_at, updated_at",
    )
    .bind(&text.name)
    .bind(&text.description)
    .bind(&text.color)
    .bind(scope.code())
    .bind(scope.project_id())
    .fetch_optional(db)
    .await
    .map_err(|e| map_unique(e, text, scope))?
    .ok_or(Error::NotFound)?;
    Ok(row.into())
}

/// The label with this id ([`Error::NotFound`] if absent or its project is
/// deleted).
pub async fn get_label(db: impl PgExecutor<'_>, id: i64) -> Result<Label> {
    let row = sqlx::query_as::<_, LabelRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM labels l WHERE l.id = $1 AND {LIVE}"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(row.into())
}

/// Replace a label's name, description and colour; its scope never
/// changes. A name already used in the scope is [`Error::Conflict`].
pub async fn update_label(db: impl PgExecutor<'_>, id: i64, text: &LabelText) -> Result<Label> {
    text.validate()?;
    let row = sqlx::query_as::<_, LabelRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE labels l SET name = $2, description = $3, color = $4, updated_at = now()
         WHERE l.id = $1 AND {LIVE}
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&text.name)
    .bind(&text.description)
    .bind(&text.color)
    .fetch_optional(db)
    .await;
    match row {
        Ok(Some(row)) => Ok(row.into()),
        Ok(None) => Err(Error::NotFound),
        Err(e) => {
            // The scope is needed for the message only when it clashes.
            if is_unique_violation(&e, "labels_global_name") {
                Err(conflict(text, LabelScope::Global))
            } else if is_unique_violation(&e, "labels_project_name") {
                Err(conflict(text, LabelScope::Project(0)))
            } else {
                Err(Error::Database(e))
            }
        }
    }
}

/// What [`delete_label`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedLabel {
    /// The label as it was.
    pub label: Label,
    /// From how many artifacts it was detached.
    pub detached: i64,
}

/// Delete a label and detach it from every artifact, in one transaction.
pub async fn delete_label(
    db: impl Acquire<'_, Database = Postgres>,
    id: i64,
) -> Result<DeletedLabel> {
    let mut tx = db.begin().await?;
    let row = sqlx::query_as::<_, LabelRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM labels l WHERE l.id = $1 AND {LIVE} FOR UPDATE OF l"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    // The foreign key would cascade too; deleting explicitly counts them.
    let detached = sqlx::query("DELETE FROM artifact_labels WHERE label_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM labels WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(DeletedLabel {
        label: row.into(),
        detached: i64::try_from(detached).unwrap_or(i64::MAX),
    })
}

/// A column labels can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSort {
    Id,
    Name,
    CreationTime,
    UpdateTime,
}

impl LabelSort {
    fn column(self) -> &'static str {
        match self {
            LabelSort::Id => "l.id",
            LabelSort::Name => "l.name",
            LabelSort::CreationTime => "l.created_at",
            LabelSort::UpdateTime => "l.updated_at",
        }
    }
}

/// Filter, order and page for [`list_labels`].
#[derive(Debug, Clone)]
pub struct LabelQuery {
    /// Global labels, or the labels of one project.
    pub scope: LabelScope,
    /// Match on the name.
    pub name: Option<TextMatch>,
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Sort keys, each with `true` for descending; ties and an empty list
    /// fall back to the name, then the id.
    pub sort: Vec<(LabelSort, bool)>,
    /// Which page.
    pub page: Page,
}

impl LabelQuery {
    /// Every label of `scope`, first page.
    pub fn new(scope: LabelScope) -> Self {
        LabelQuery {
            scope,
            name: None,
            ids: None,
            sort: Vec::new(),
            page: Page::default(),
        }
    }
}

/// The labels of one scope matching `query`, one page at a time.
pub async fn list_labels(
    db: impl Acquire<'_, Database = Postgres>,
    query: &LabelQuery,
) -> Result<Listing<Label>> {
    let mut conn = db.acquire().await?;
    let (limit, offset) = query.page.limit_offset();
    // $1 scope letter, $2 project id, $3/$4 name exact/pattern, $5 ids.
    let filter = format!(
        "l.scope = $1 AND l.project_id IS NOT DISTINCT FROM $2 AND {LIVE}
          AND ($3::text IS NULL OR l.name = $3)
          AND ($4::text IS NULL OR l.name ILIKE $4)
          AND ($5::bigint[] IS NULL OR l.id = ANY($5))"
    );
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM labels l WHERE {filter}"
    )))
    .bind(query.scope.code())
    .bind(query.scope.project_id())
    .bind(TextMatch::exact(query.name.as_ref()))
    .bind(TextMatch::pattern(query.name.as_ref()))
    .bind(&query.ids)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("l.name ASC".into());
    order.push("l.id ASC".into());
    let rows = sqlx::query_as::<_, LabelRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM labels l WHERE {filter}
         ORDER BY {} LIMIT $6 OFFSET $7",
        order.join(", ")
    )))
    .bind(query.scope.code())
    .bind(query.scope.project_id())
    .bind(TextMatch::exact(query.name.as_ref()))
    .bind(TextMatch::pattern(query.name.as_ref()))
    .bind(&query.ids)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Listing {
        items: rows.into_iter().map(Label::from).collect(),
        total,
    })
}

// ---------------------------------------------------------------------------
// Labels on artifacts.

/// The labels attached to each of these artifacts, each list ordered by
/// name (then id). Artifacts without labels are absent from the map. One
/// query however many artifacts are asked about.
pub async fn labels_of(
    db: impl PgExecutor<'_>,
    artifact_ids: &[i64],
) -> Result<HashMap<i64, Vec<Label>>> {
    #[derive(sqlx::FromRow)]
    struct Attached {
        manifest_id: i64,
        #[sqlx(flatten)]
        label: LabelRow,
    }
    if artifact_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query_as::<_, Attached>(sqlx::AssertSqlSafe(format!(
        "SELECT al.manifest_id, {COLUMNS}
         FROM artifact_labels al JOIN labels l ON l.id = al.label_id
         WHERE al.manifest_id = ANY($1) AND {LIVE}
         ORDER BY al.manifest_id, l.name, l.id"
    )))
    .bind(artifact_ids)
    .fetch_all(db)
    .await?;
    let mut by_artifact: HashMap<i64, Vec<Label>> = HashMap::new();
    for row in rows {
        by_artifact
            .entry(row.manifest_id)
            .or_default()
            .push(row.label.into());
    }
    Ok(by_artifact)
}

/// How a label filter combines several labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMatch {
    /// The artifact carries every one of the labels (Harbor's
    /// `q=labels=(id1 id2)`).
    All,
    /// The artifact carries at least one of them (`q=labels={id1 id2}`).
    Any,
}

/// A SQL condition, for an artifact query, that the artifact whose id is
/// `manifest_id_column` carries the labels bound as a `bigint[]` at
/// parameter `$param`. `manifest_id_column` must be a column reference
/// written in the caller's code (`m.id`), never request input. With
/// [`LabelMatch::All`] an empty array matches every artifact; with
/// [`LabelMatch::Any`] it matches none.
///
/// ```
/// use wharf_projects::labels::{LabelMatch, label_condition};
/// let sql = format!(
///     "SELECT m.id FROM manifests m WHERE m.repository_id = $1 AND {}",
///     label_condition("m.id", 2, LabelMatch::All)
/// );
/// assert!(sql.contains("$2::bigint[]"));
/// ```
pub fn label_condition(manifest_id_column: &str, param: u32, matching: LabelMatch) -> String {
    assert!(
        manifest_id_column
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
        "label_condition takes a column reference, not {manifest_id_column:?}"
    );
    match matching {
        LabelMatch::All => format!(
            "NOT EXISTS (SELECT 1 FROM unnest(${param}::bigint[]) AS wanted(id)
                WHERE NOT EXISTS (SELECT 1 FROM artifact_labels wal
                    WHERE wal.manifest_id = {manifest_id_column} AND wal.label_id = wanted.id))"
        ),
        LabelMatch::Any => format!(
            "EXISTS (SELECT 1 FROM artifact_labels wal
                WHERE wal.manifest_id = {manifest_id_column} AND wal.label_id = ANY(${param}::bigint[]))"
        ),
    }
}

/// The artifacts of the repository `repository_id` (every repository when
/// `None`) that carry the labels `label_ids` (all or any of them), by id.
pub async fn artifacts_with_labels(
    db: impl PgExecutor<'_>,
    repository_id: Option<i64>,
    label_ids: &[i64],
    matching: LabelMatch,
) -> Result<Vec<i64>> {
    let ids = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT m.id FROM manifests m
         WHERE ($1::bigint IS NULL OR m.repository_id = $1) AND {}
         ORDER BY m.id",
        label_condition("m.id", 2, matching)
    )))
    .bind(repository_id)
    .bind(label_ids)
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// Why a label could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The artifact does not exist (any more).
    #[error("artifact not found")]
    ArtifactNotFound,
    /// The label does not exist, or is a project label of another project.
    #[error("label not found")]
    LabelNotFound,
    /// The label is already on the artifact.
    #[error("label already attached")]
    AlreadyAttached,
    /// Anything else.
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<sqlx::Error> for AttachError {
    fn from(e: sqlx::Error) -> Self {
        AttachError::Other(Error::Database(e))
    }
}

/// Attach a label to an artifact. A global label goes on any artifact; a
/// project label only on artifacts of its project (otherwise it is
/// [`AttachError::LabelNotFound`], as Harbor answers). Returns the label.
pub async fn attach_label(
    db: impl Acquire<'_, Database = Postgres>,
    artifact_id: i64,
    label_id: i64,
) -> std::result::Result<Label, AttachError> {
    let mut tx = db.begin().await?;
    // Lock the label and the artifact row so neither disappears between the
    // check and the insert (a concurrent delete waits, then cascades).
    let project: Option<String> = sqlx::query_scalar(
        "SELECT r.project FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE m.id = $1 FOR SHARE OF m",
    )
    .bind(artifact_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(project) = project else {
        return Err(AttachError::ArtifactNotFound);
    };
    let label = sqlx::query_as::<_, LabelRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM labels l
         WHERE l.id = $1 AND {LIVE}
           AND (l.project_id IS NULL OR l.project_id =
                (SELECT id FROM projects WHERE name = $2 AND NOT deleted))
         FOR SHARE OF l"
    )))
    .bind(label_id)
    .bind(&project)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AttachError::LabelNotFound)?;
    let inserted = sqlx::query(
        "INSERT INTO artifact_labels (manifest_id, label_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(artifact_id)
    .bind(label_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AttachError::AlreadyAttached);
    }
    tx.commit().await?;
    Ok(label.into())
}

/// Detach a label from an artifact; [`Error::NotFound`] when it is not
/// attached. Returns the label.
pub async fn detach_label(
    db: impl Acquire<'_, Database = Postgres>,
    artifact_id: i64,
    label_id: i64,
) -> Result<Label> {
    let mut tx = db.begin().await?;
    let label = get_label(&mut *tx, label_id).await?;
    let removed =
        sqlx::query("DELETE FROM artifact_labels WHERE manifest_id = $1 AND label_id = $2")
            .bind(artifact_id)
            .bind(label_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if removed == 0 {
        return Err(Error::NotFound);
    }
    tx.commit().await?;
    Ok(label)
}
