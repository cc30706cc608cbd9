//! The audit log: who did what to which resource, when and from where.
//!
//! Administrative changes are recorded by the caller in the transaction that
//! makes them ([`record`]); registry pushes and deletes arrive through
//! [`RegistryAudit`] inside the registry's own transaction. Pulls change
//! nothing and are the bulk of traffic, so they are queued and written in
//! batches by a background task instead of costing every pull an insert.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use tokio::sync::mpsc;
use wharf_registry::seams::{EventSink, RegistryEvent};

use crate::error::Result;
use crate::robots::PermissionKind;
use crate::roles::Role;
use crate::security::Principal;
use crate::{Listing, Page};

/// One entry to write.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    /// The project the resource belongs to; `None` for system resources.
    pub project_id: Option<i64>,
    /// Who: a username, a robot's login name, or `anonymous`.
    pub username: &'a str,
    /// Harbor's operation words: `create`, `update`, `delete`, `pull`, ...
    pub operation: &'a str,
    /// Free text saying what happened, for people.
    pub description: &'a str,
    /// Whether the operation succeeded (refused logins are recorded too).
    pub success: bool,
    /// `artifact`, `project`, `user`, `member`, `robot`, `login`, ...
    pub resource_type: &'a str,
    /// Which one: `library/app:v1`, a project or user name, ...
    pub resource: &'a str,
    /// The client's address.
    pub client_addr: Option<&'a str>,
}

/// Write one entry (in the caller's transaction, when given one).
pub async fn record(db: impl PgExecutor<'_>, entry: &AuditEntry<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_logs (project_id, username, operation, operation_description,
                                 operation_result, resource_type, resource, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.project_id)
    .bind(entry.username)
    .bind(entry.operation)
    .bind(entry.description)
    .bind(entry.success)
    .bind(entry.resource_type)
    .bind(entry.resource)
    .bind(entry.client_addr)
    .execute(db)
    .await?;
    Ok(())
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditLog {
    pub id: i64,
    pub project_id: Option<i64>,
    pub username: String,
    pub operation: String,
    pub operation_description: String,
    pub operation_result: bool,
    pub resource_type: String,
    pub resource: String,
    pub client_addr: Option<String>,
    pub op_time: DateTime<Utc>,
}

/// Filter and page for [`list`]. Text filters are exact unless named
/// `_contains`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries of these projects (`Some(vec![])` matches nothing); `None`
    /// means every entry, system ones included.
    pub project_ids: Option<Vec<i64>>,
    pub username: Option<String>,
    pub operation: Option<String>,
    pub resource_type: Option<String>,
    pub resource_contains: Option<String>,
    /// Only entries about exactly this resource.
    pub resource: Option<String>,
    pub username_contains: Option<String>,
    pub operation_contains: Option<String>,
    pub resource_type_contains: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub page: Page,
}

/// Entries matching `query`, newest first unless asked otherwise.
pub async fn list(pool: &PgPool, query: &AuditQuery) -> Result<Listing<AuditLog>> {
    let like = |text: &Option<String>| {
        text.as_deref()
            .map(|s| format!("%{}%", crate::users::escape_like(s)))
    };
    let pattern = like(&query.resource_contains);
    let username_like = like(&query.username_contains);
    let operation_like = like(&query.operation_contains);
    let resource_type_like = like(&query.resource_type_contains);
    let (limit, offset) = query.page.limit_offset();
    let filter = "($1::bigint[] IS NULL OR project_id = ANY($1))
          AND ($2::text IS NULL OR username = $2)
          AND ($3::text IS NULL OR operation = $3)
          AND ($4::text IS NULL OR resource_type = $4)
          AND ($5::text IS NULL OR resource LIKE $5)
          AND ($6::timestamptz IS NULL OR op_time >= $6)
          AND ($7::timestamptz IS NULL OR op_time <= $7)
          AND ($8::text IS NULL OR resource = $8)
          AND ($9::text IS NULL OR username LIKE $9)
          AND ($10::text IS NULL OR operation LIKE $10)
          AND ($11::text IS NULL OR resource_type LIKE $11)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM audit_logs WHERE {filter}"
    )))
    .bind(&query.project_ids)
    .bind(&query.username)
    .bind(&query.operation)
    .bind(&query.resource_type)
    .bind(&pattern)
    .bind(query.since)
    .bind(query.until)
    .bind(&query.resource)
    .bind(&username_like)
    .bind(&operation_like)
    .bind(&resource_type_like)
    .fetch_one(pool)
    .await?;
    let order = if query.oldest_first { "ASC" } else { "DESC" };
    let items = sqlx::query_as::<_, AuditLog>(sqlx::AssertSqlSafe(format!(
        "SELECT id, project_id, username, operation, operation_description, operation_result,
                resource_type, resource, client_addr, op_time
         FROM audit_logs WHERE {filter}
         ORDER BY op_time {order}, id {order} LIMIT $12 OFFSET $13"
    )))
    .bind(&query.project_ids)
    .bind(&query.username)
    .bind(&query.operation)
    .bind(&query.resource_type)
    .bind(&pattern)
    .bind(query.since)
    .bind(query.until)
    .bind(&query.resource)
    .bind(&username_like)
    .bind(&operation_like)
    .bind(&resource_type_like)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Listing { items, total })
}

/// Which projects' entries `principal` may read: `None` for every entry
/// (system administrators and robots granted the system `audit-log:list`),
/// otherwise the live projects where it holds `log:list` (by role, or by a
/// robot grant; a robot's `*` grant covers every project but not system
/// entries). Anonymous callers get none.
pub async fn readable_projects(pool: &PgPool, principal: &Principal) -> Result<Option<Vec<i64>>> {
    if principal.is_sysadmin() || principal.can_system("audit-log", "list") {
        return Ok(None);
    }
    match principal {
        Principal::Anonymous => Ok(Some(Vec::new())),
        Principal::User(user) => {
            let memberships: Vec<(i64, i16)> = sqlx::query_as(
                "SELECT pm.project_id, pm.role FROM project_members pm
                 JOIN projects p ON p.id = pm.project_id AND NOT p.deleted
                 WHERE pm.entity_type = 'u' AND pm.entity_id = $1",
            )
            .bind(user.id)
            .fetch_all(pool)
            .await?;
            Ok(Some(
                memberships
                    .into_iter()
                    .filter(|&(_, role)| Role::from_id(role).is_some_and(|r| r.can("log", "list")))
                    .map(|(id, _)| id)
                    .collect(),
            ))
        }
        Principal::Robot { robot, .. } => {
            let grants_log = |p: &&crate::robots::RobotPermission| {
                p.kind == PermissionKind::Project
                    && p.access
                        .iter()
                        .any(|a| a.resource == "log" && a.action == "list")
            };
            let granted: Vec<_> = robot.permissions.iter().filter(grants_log).collect();
            if granted.iter().any(|p| p.namespace == "*") {
                let all: Vec<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE NOT deleted")
                    .fetch_all(pool)
                    .await?;
                return Ok(Some(all));
            }
            Ok(Some(granted.iter().filter_map(|p| p.project_id).collect()))
        }
    }
}

/// How many pulls are written in one insert at most.
const PULL_BATCH: usize = 512;

/// Pulls waiting beyond this are dropped (and counted in the log) rather
/// than letting memory grow when the database is slow or down.
const PULL_QUEUE: usize = 65_536;

/// The registry's [`EventSink`]: pushes and deletes become audit entries
/// (and webhook deliveries, [`crate::webhooks`]) in the registry's
/// transaction; pulls are queued and batch-inserted.
#[derive(Debug, Clone)]
pub struct RegistryAudit {
    pulls: mpsc::Sender<RegistryEvent>,
}

impl RegistryAudit {
    /// The sink and the task that writes queued pulls (it ends when every
    /// sink clone is dropped, after writing what is queued).
    pub fn spawn(pool: PgPool) -> (RegistryAudit, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(PULL_QUEUE);
        let task = tokio::spawn(write_pulls(pool, rx));
        (RegistryAudit { pulls: tx }, task)
    }
}

/// The audit fields of a registry event.
struct Described {
    repository: String,
    operation: &'static str,
    resource: String,
    username: String,
    client_addr: Option<String>,
}

fn describe(event: &RegistryEvent) -> Described {
    let (repository, operation, resource, actor) = match event {
        RegistryEvent::ManifestPushed {
            repository,
            digest,
            tag,
            actor,
            ..
        } => (
            repository,
            "create",
            artifact_resource(repository.as_str(), tag.as_deref(), &digest.to_string()),
            actor,
        ),
        RegistryEvent::ManifestPulled {
            repository,
            digest,
            tag,
            actor,
        } => (
            repository,
            "pull",
            artifact_resource(repository.as_str(), tag.as_deref(), &digest.to_string()),
            actor,
        ),
        RegistryEvent::ManifestDeleted {
            repository,
            digest,
            actor,
        } => (
            repository,
            "delete",
            format!("{repository}@{digest}"),
            actor,
        ),
        RegistryEvent::TagDeleted {
            repository,
            tag,
            actor,
        } => (repository, "delete", format!("{repository}:{tag}"), actor),
    };
    Described {
        repository: repository.as_str().to_owned(),
        operation,
        resource,
        username: actor.name.clone().unwrap_or_else(|| "anonymous".to_owned()),
        client_addr: actor.client_addr.clone(),
    }
}

fn artifact_resource(repository: &str, tag: Option<&str>, digest: &str) -> String {
    match tag {
        Some(tag) => format!("{repository}:{tag}"),
        None => format!("{repository}@{digest}"),
    }
}

/// The project of a repository is its first path segment.
fn project_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

#[async_trait::async_trait]
impl EventSink for RegistryAudit {
    async fn record_change(
        &self,
        tx: &mut PgConnection,
        event: &RegistryEvent,
    ) -> sqlx::Result<()> {
        let d = describe(event);
        sqlx::query(
            "INSERT INTO audit_logs (project_id, username, operation, resource_type, resource,
                                     client_addr)
             VALUES ((SELECT id FROM projects WHERE name = $1 AND NOT deleted),
                     $2, $3, 'artifact', $4, $5)",
        )
        .bind(project_of(&d.repository))
        .bind(&d.username)
        .bind(d.operation)
        .bind(&d.resource)
        .bind(&d.client_addr)
        .execute(&mut *tx)
        .await?;
        // Event-based replication, like the webhook outbox below: the
        // executions and their jobs commit or roll back with the change.
        replicate_change(tx, event).await?;
        // The webhook outbox: deliveries and their jobs commit or roll back
        // with the change.
        crate::webhooks::outbox::record_registry_change(tx, event).await
    }

    fn record_pull(&self, event: RegistryEvent) {
        if self.pulls.try_send(event).is_err() {
            tracing::warn!("audit queue full or closed: a pull was not recorded");
        }
    }
}

/// Start the event-based replications a change triggers (pulls change
/// nothing; a push without a tag is replicated with the tag or index
/// that names it).
async fn replicate_change(tx: &mut PgConnection, event: &RegistryEvent) -> sqlx::Result<()> {
    use wharf_replication::events::{Change, on_registry_change};
    let digest;
    let change = match event {
        RegistryEvent::ManifestPushed {
            repository,
            tag: Some(tag),
            ..
        } => Change::Pushed {
            repository: repository.as_str(),
            tag,
        },
        RegistryEvent::TagDeleted {
            repository, tag, ..
        } => Change::TagDeleted {
            repository: repository.as_str(),
            tag,
        },
        RegistryEvent::ManifestDeleted {
            repository,
            digest: d,
            ..
        } => {
            digest = d.to_string();
            Change::ManifestDeleted {
                repository: repository.as_str(),
                digest: &digest,
            }
        }
        _ => return Ok(()),
    };
    on_registry_change(tx, change).await.map(|_| ())
}

/// What a pull event says about pull times.
fn pull_of(event: &RegistryEvent) -> Option<crate::artifacts::Pull> {
    match event {
        RegistryEvent::ManifestPulled {
            repository,
            digest,
            tag,
            ..
        } => Some(crate::artifacts::Pull {
            repository: repository.as_str().to_owned(),
            digest: digest.to_string(),
            tag: tag.clone(),
        }),
        _ => None,
    }
}

/// Two replicas flushing batches over the same rows at once can deadlock
/// (PostgreSQL then aborts one of them): the loser tries again, a few times.
async fn record_pull_times(pool: &PgPool, pulls: &[crate::artifacts::Pull]) {
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        match crate::artifacts::record_pulls(pool, pulls).await {
            Ok(()) => return,
            Err(crate::Error::Database(e))
                if attempt < ATTEMPTS
                    && e.as_database_error().and_then(|d| d.code()).as_deref() == Some("40P01") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, pulls = pulls.len(), "could not record pull times");
                return;
            }
        }
    }
}

async fn write_pulls(pool: PgPool, mut rx: mpsc::Receiver<RegistryEvent>) {
    let mut batch = Vec::with_capacity(PULL_BATCH);
    while rx.recv_many(&mut batch, PULL_BATCH).await > 0 {
        // Pull times and counts ride on the same batch: one statement for
        // all of them instead of a write per pull.
        let pulls: Vec<crate::artifacts::Pull> = batch.iter().filter_map(pull_of).collect();
        record_pull_times(&pool, &pulls).await;
        crate::webhooks::outbox::record_pulls(&pool, &batch).await;
        let described: Vec<Described> = batch.drain(..).map(|e| describe(&e)).collect();
        let mut projects = Vec::new();
        let mut usernames = Vec::new();
        let mut resources = Vec::new();
        let mut addrs = Vec::new();
        for d in described {
            projects.push(project_of(&d.repository).to_owned());
            usernames.push(d.username);
            resources.push(d.resource);
            addrs.push(d.client_addr);
        }
        let written = sqlx::query(
            "INSERT INTO audit_logs (project_id, username, operation, resource_type, resource,
                                     client_addr)
             SELECT p.id, x.username, 'pull', 'artifact', x.resource, x.addr
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
                  AS x(project, username, resource, addr)
             LEFT JOIN projects p ON p.name = x.project AND NOT p.deleted",
        )
        .bind(&projects)
        .bind(&usernames)
        .bind(&resources)
        .bind(&addrs)
        .execute(&pool)
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, pulls = projects.len(), "could not record pulls in the audit log");
        }
    }
}
