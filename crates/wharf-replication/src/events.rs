//! Event-based triggers: a push or deletion in this Wharf starts an
//! execution of every enabled `event_based` policy whose source is local
//! and whose filters take the resource, for that one resource.
//!
//! Called inside the transaction of the change (the registry's outbox), so
//! the executions and their jobs commit or roll back with it. A Wharf with
//! no event-based policy pays one indexed lookup per change.

use sqlx::PgConnection;
use wharf_jobs::Trigger;

use crate::client::ReplicationError;
use crate::policies::{self, EventResource, PolicyFilters};

/// What changed in this Wharf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// A manifest pushed under a tag.
    Pushed { repository: &'a str, tag: &'a str },
    /// A tag removed.
    TagDeleted { repository: &'a str, tag: &'a str },
    /// A manifest (and so every tag on it) removed.
    ManifestDeleted {
        repository: &'a str,
        digest: &'a str,
    },
}

/// What the trigger needs of an event-based policy.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: i64,
    name_filter: Option<String>,
    name_decoration: String,
    tag_filter: Option<String>,
    tag_decoration: String,
    replicate_deletion: bool,
}

/// Start the executions `change` triggers, on `tx`; returns their ids.
/// Deletions only start policies with `replicate_deletion`; a change named
/// by digest only policies without a tag filter (a digest has no tag to
/// judge). Label filters are judged by the job when it plans, when the
/// artifact's labels are known; a push has none yet.
pub async fn on_registry_change(
    tx: &mut PgConnection,
    change: Change<'_>,
) -> sqlx::Result<Vec<i64>> {
    let (repository, reference, tag, deleted) = match change {
        Change::Pushed { repository, tag } => (repository, tag, Some(tag), false),
        Change::TagDeleted { repository, tag } => (repository, tag, Some(tag), true),
        Change::ManifestDeleted { repository, digest } => (repository, digest, None, true),
    };
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT id, name_filter, name_decoration, tag_filter, tag_decoration, \
         replicate_deletion FROM replication_policies \
         WHERE trigger_type = 'event_based' AND enabled AND src_registry_id IS NULL \
         ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut started = Vec::new();
    for c in candidates {
        let id = c.id;
        if deleted && !c.replicate_deletion {
            continue;
        }
        let Ok(filters) = PolicyFilters::new(
            c.name_filter.as_deref(),
            c.name_decoration == "excludes",
            c.tag_filter.as_deref(),
            c.tag_decoration == "excludes",
        ) else {
            // Stored filters were validated; one that no longer parses
            // must not fail the push.
            tracing::warn!(
                policy = id,
                "replication policy with an unparsable filter skipped"
            );
            continue;
        };
        let tag_ok = match tag {
            Some(t) => filters.tag(t),
            None => !filters.has_tag_filter(),
        };
        if !filters.repository(repository) || !tag_ok {
            continue;
        }
        let resource = EventResource {
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            deleted,
        };
        match policies::enqueue_execution(&mut *tx, id, Trigger::Event, Some(&resource)).await {
            Ok(execution) => started.push(execution),
            Err(ReplicationError::Database(e)) => return Err(e),
            Err(other) => return Err(sqlx::Error::Protocol(other.to_string())),
        }
    }
    Ok(started)
}
