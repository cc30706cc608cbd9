//! Turning what happened into deliveries: for each enabled policy of the
//! project that subscribes to the event type, one `webhook_deliveries` row
//! per target and one queued [`super::KIND`] job that sends it, written on
//! the caller's connection (so inside its transaction when it has one).
//!
//! A project without matching policies costs one indexed lookup and nothing
//! else, which is what every push pays.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use wharf_registry::seams::RegistryEvent;

use super::delivery::{KIND, QUEUE_ATTEMPTS};
use super::event::{Event, EventType, QUOTA_WARNING_PERCENT, Repository, Resource};
use super::policy::Target;

/// An enabled policy that wants the event, with its targets.
#[derive(Debug, Clone)]
struct Subscriber {
    policy_id: i64,
    targets: Vec<Target>,
}

/// Queue errors travel as database errors: the caller's transaction fails
/// either way, and the registry's seams speak `sqlx::Error`.
fn queue_error(e: wharf_jobs::JobsError) -> sqlx::Error {
    match e {
        wharf_jobs::JobsError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Write one delivery per target of every subscriber, each with its job.
/// Returns how many deliveries were queued.
async fn enqueue_deliveries(
    conn: &mut PgConnection,
    subscribers: &[Subscriber],
    event: &Event,
) -> sqlx::Result<usize> {
    let mut queued = 0;
    for subscriber in subscribers {
        for target in &subscriber.targets {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO webhook_deliveries
                     (policy_id, event_type, event, notify_type, payload_format, address,
                      auth_header, skip_cert_verify)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 RETURNING id",
            )
            .bind(subscriber.policy_id)
            .bind(event.event_type.as_str())
            .bind(Json(event))
            .bind(target.notify_type.as_str())
            .bind(target.payload_format.as_str())
            .bind(&target.address)
            .bind(&target.auth_header)
            .bind(target.skip_cert_verify)
            .fetch_one(&mut *conn)
            .await?;
            wharf_jobs::enqueue(
                &mut *conn,
                KIND,
                json!({ "delivery_id": id }),
                wharf_jobs::EnqueueOptions {
                    max_attempts: Some(QUEUE_ATTEMPTS),
                    ..Default::default()
                },
            )
            .await
            .map_err(queue_error)?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// The enabled policies of the project `project_id` that subscribe to `event_type`.
async fn subscribers(
    conn: &mut PgConnection,
    project_id: i64,
    event_type: EventType,
) -> sqlx::Result<Vec<Subscriber>> {
    let rows: Vec<(i64, Json<Vec<Target>>)> = sqlx::query_as(
        "SELECT id, targets FROM webhook_policies
          WHERE project_id = $1 AND enabled AND $2 = ANY(event_types)
          ORDER BY id",
    )
    .bind(project_id)
    .bind(event_type.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(policy_id, targets)| Subscriber {
            policy_id,
            targets: targets.0,
        })
        .collect())
}

const PUBLIC: &str = "EXISTS (SELECT 1 FROM project_metadata pm
                       WHERE pm.project_id = p.id AND pm.name = 'public' AND pm.value = 'true')";

fn operator(name: &Option<String>) -> String {
    name.clone().unwrap_or_else(|| "anonymous".to_owned())
}

/// A policy that wants a registry event, with what the payload says about
/// the project and repository.
#[derive(sqlx::FromRow)]
struct Matched {
    policy_id: i64,
    targets: Json<Vec<Target>>,
    project_id: i64,
    public: bool,
    created: Option<DateTime<Utc>>,
}

/// The push or delete `event` of the registry, inside its transaction:
/// `PUSH_ARTIFACT` for a pushed manifest, `DELETE_ARTIFACT` for a deleted
/// one. A tag deleted alone is no Harbor webhook event.
pub(crate) async fn record_registry_change(
    tx: &mut PgConnection,
    event: &RegistryEvent,
) -> sqlx::Result<()> {
    let (event_type, repository, digest, tag, actor) = match event {
        RegistryEvent::ManifestPushed {
            repository,
            digest,
            tag,
            actor,
            ..
        } => (
            EventType::PushArtifact,
            repository,
            digest,
            tag.clone(),
            actor,
        ),
        RegistryEvent::ManifestDeleted {
            repository,
            digest,
            actor,
        } => (EventType::DeleteArtifact, repository, digest, None, actor),
        RegistryEvent::ManifestPulled { .. } | RegistryEvent::TagDeleted { .. } => return Ok(()),
    };
    let rows: Vec<Matched> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT wp.id AS policy_id, wp.targets, p.id AS project_id, {PUBLIC} AS public,
                (SELECT created_at FROM repositories WHERE name = $3) AS created
           FROM projects p JOIN webhook_policies wp ON wp.project_id = p.id
          WHERE p.name = $1 AND NOT p.deleted AND wp.enabled AND $2 = ANY(wp.event_types)
          ORDER BY wp.id"
    )))
    .bind(repository.project())
    .bind(event_type.as_str())
    .bind(repository.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let (project_id, public, created) = (first.project_id, first.public, first.created);
    let digest = digest.to_string();
    let event = Event {
        event_type,
        occur_at: Utc::now().timestamp(),
        operator: operator(&actor.name),
        project_id,
        repository: Some(Repository::new(repository.as_str(), public, created)),
        resources: vec![Resource {
            tag: tag.unwrap_or_else(|| digest.clone()),
            digest,
        }],
        retention: None,
        custom_attributes: BTreeMap::new(),
    };
    let subscribers: Vec<Subscriber> = rows
        .into_iter()
        .map(|m| Subscriber {
            policy_id: m.policy_id,
            targets: m.targets.0,
        })
        .collect();
    enqueue_deliveries(tx, &subscribers, &event).await?;
    Ok(())
}

/// `PULL_ARTIFACT` for the pulls among `events` (a batch of the pull
/// writer), in one transaction of their own. Pulls were served already;
/// a failure here is logged, and those events are not sent.
pub(crate) async fn record_pulls(pool: &PgPool, events: &[RegistryEvent]) {
    if let Err(e) = try_record_pulls(pool, events).await {
        tracing::warn!(error = %e, "could not queue PULL_ARTIFACT webhooks");
    }
}

async fn try_record_pulls(pool: &PgPool, events: &[RegistryEvent]) -> sqlx::Result<()> {
    let pulls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RegistryEvent::ManifestPulled {
                repository,
                digest,
                tag,
                actor,
            } => Some((repository, digest, tag, actor)),
            _ => None,
        })
        .collect();
    if pulls.is_empty() {
        return Ok(());
    }
    let projects: Vec<&str> = pulls
        .iter()
        .map(|(r, ..)| r.project())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    #[derive(sqlx::FromRow)]
    struct PullMatch {
        project: String,
        project_id: i64,
        public: bool,
        policy_id: i64,
        targets: Json<Vec<Target>>,
    }
    let rows: Vec<PullMatch> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT p.name AS project, p.id AS project_id, {PUBLIC} AS public,
                wp.id AS policy_id, wp.targets
           FROM projects p JOIN webhook_policies wp ON wp.project_id = p.id
          WHERE p.name = ANY($1) AND NOT p.deleted AND wp.enabled
            AND 'PULL_ARTIFACT' = ANY(wp.event_types)
          ORDER BY wp.id"
    )))
    .bind(&projects)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut by_project: HashMap<String, (i64, bool, Vec<Subscriber>)> = HashMap::new();
    for m in rows {
        by_project
            .entry(m.project)
            .or_insert_with(|| (m.project_id, m.public, Vec::new()))
            .2
            .push(Subscriber {
                policy_id: m.policy_id,
                targets: m.targets.0,
            });
    }
    let repositories: Vec<&str> = pulls
        .iter()
        .filter(|(r, ..)| by_project.contains_key(r.project()))
        .map(|(r, ..)| r.as_str())
        .collect();
    let created: HashMap<String, DateTime<Utc>> =
        sqlx::query_as("SELECT name, created_at FROM repositories WHERE name = ANY($1)")
            .bind(&repositories)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let now = Utc::now().timestamp();
    let mut tx = pool.begin().await?;
    for (repository, digest, tag, actor) in pulls {
        let Some((project_id, public, subscribers)) = by_project.get(repository.project()) else {
            continue;
        };
        let digest = digest.to_string();
        let event = Event {
            event_type: EventType::PullArtifact,
            occur_at: now,
            operator: operator(&actor.name),
            project_id: *project_id,
            repository: Some(Repository::new(
                repository.as_str(),
                *public,
                created.get(repository.as_str()).copied(),
            )),
            resources: vec![Resource {
                tag: tag.clone().unwrap_or_else(|| digest.clone()),
                digest,
            }],
            retention: None,
            custom_attributes: BTreeMap::new(),
        };
        enqueue_deliveries(&mut tx, subscribers, &event).await?;
    }
    tx.commit().await
}

/// A quota event about a push to `repository` of `project_id`.
async fn quota_event(
    conn: &mut PgConnection,
    event_type: EventType,
    project_id: i64,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    details: String,
) -> sqlx::Result<()> {
    let subscribers = subscribers(&mut *conn, project_id, event_type).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let (public, created): (bool, Option<DateTime<Utc>>) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PUBLIC}, (SELECT created_at FROM repositories WHERE name = $2)
               FROM projects p WHERE p.id = $1"
        )))
        .bind(project_id)
        .bind(repository)
        .fetch_one(&mut *conn)
        .await?;
    let event = Event {
        event_type,
        occur_at: Utc::now().timestamp(),
        // Harbor's quota events name no operator.
        operator: String::new(),
        project_id,
        repository: Some(Repository::new(repository, public, created)),
        resources: vec![Resource {
            digest: digest.to_owned(),
            tag: tag.unwrap_or(digest).to_owned(),
        }],
        retention: None,
        custom_attributes: BTreeMap::from([("Details".to_owned(), details)]),
    };
    enqueue_deliveries(conn, &subscribers, &event).await?;
    Ok(())
}

/// `QUOTA_EXCEED`: a push to `repository` was refused for its quota. The
/// push's transaction rolls back, so this runs on a connection of its own;
/// call it off the request's path (it is a notification, not part of the
/// refusal). Failures are logged.
pub async fn record_quota_exceeded(
    pool: &PgPool,
    project_id: i64,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    details: String,
) {
    let queued = async {
        let mut conn = pool.acquire().await?;
        quota_event(
            &mut conn,
            EventType::QuotaExceed,
            project_id,
            repository,
            digest,
            tag,
            details,
        )
        .await
    };
    if let Err(e) = queued.await {
        tracing::warn!(error = %e, project_id, "could not queue a QUOTA_EXCEED webhook");
    }
}

/// Whether a push that took usage from `before` to `after` bytes under
/// `limit` (`-1`: none) crossed [`QUOTA_WARNING_PERCENT`]. Only the push
/// that crosses warns, not every push above it.
pub fn crosses_warning(limit: i64, before: i64, after: i64) -> bool {
    if limit <= 0 {
        return false;
    }
    let threshold = i128::from(limit) * i128::from(QUOTA_WARNING_PERCENT);
    i128::from(before) * 100 < threshold && i128::from(after) * 100 >= threshold
}

/// `QUOTA_WARNING` inside the transaction of the push that crossed the
/// threshold (so it is sent only if the push commits).
pub async fn record_quota_warning(
    tx: &mut PgConnection,
    project_id: i64,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    details: String,
) -> sqlx::Result<()> {
    quota_event(
        tx,
        EventType::QuotaWarning,
        project_id,
        repository,
        digest,
        tag,
        details,
    )
    .await
}

/// `TAG_RETENTION` for the retention run `execution_id`, inside the
/// transaction that records its end (its status and result must be
/// written already). Dry runs send nothing, as in Harbor.
pub async fn record_retention_finished(
    tx: &mut PgConnection,
    execution_id: i64,
) -> sqlx::Result<()> {
    type RunRow = (
        String,
        String,
        Value,
        Option<Value>,
        i64,
        Value,
        i64,
        String,
    );
    let run: Option<RunRow> = sqlx::query_as(
        "SELECT e.status, e.\"trigger\", e.parameters, e.result, rp.id, rp.rules, p.id, p.name
           FROM job_executions e
           JOIN retention_policies rp ON rp.id = (e.parameters->>'policy_id')::bigint
           JOIN projects p ON p.id = rp.project_id AND NOT p.deleted
          WHERE e.id = $1",
    )
    .bind(execution_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, trigger, parameters, result, policy_id, rules, project_id, project)) = run
    else {
        return Ok(());
    };
    if parameters.get("dry_run").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let subscribers = subscribers(&mut *tx, project_id, EventType::TagRetention).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let result = result.unwrap_or_default();
    let rules: Vec<Value> = rules
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            json!({
                "template": r.get("template"),
                "params": r.get("params"),
                "tag_selectors": r.get("tag_selectors"),
                "scope_selectors": r.get("scope_selectors"),
            })
        })
        .collect();
    let event = Event {
        event_type: EventType::TagRetention,
        occur_at: Utc::now().timestamp(),
        // Harbor names the trigger as the operator of a retention run.
        operator: trigger.to_ascii_uppercase(),
        project_id,
        repository: None,
        resources: Vec::new(),
        retention: Some(json!({
            "total": result.get("total").and_then(Value::as_i64).unwrap_or(0),
            "retained": result.get("retained").and_then(Value::as_i64).unwrap_or(0),
            "deleted": result.get("deleted").and_then(Value::as_i64).unwrap_or(0),
            "project_name": project,
            "retention_policy_id": policy_id,
            "execution_id": execution_id,
            "retention_rule": rules,
            "result": status.to_ascii_uppercase(),
        })),
        custom_attributes: BTreeMap::new(),
    };
    enqueue_deliveries(tx, &subscribers, &event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::crosses_warning;

    #[test]
    fn only_the_push_that_crosses_85_percent_warns() {
        assert!(crosses_warning(100, 84, 85));
        assert!(crosses_warning(100, 0, 100));
        assert!(!crosses_warning(100, 85, 90), "already past the threshold");
        assert!(!crosses_warning(100, 10, 84));
        assert!(!crosses_warning(-1, 0, i64::MAX), "unlimited");
        assert!(crosses_warning(i64::MAX, 0, i64::MAX), "no overflow");
    }
}
