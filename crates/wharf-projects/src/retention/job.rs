//! A retention run as a job (kind [`super::KIND`]): the workers of `wharf_jobs`
//! run it when someone triggers the policy or its schedule fires.
//!
//! The run reads the policy as it is when the run starts, decides which
//! repositories are in scope and records one task per repository (so the
//! tasks list shows the whole run from the start), then works through them
//! in order. For each it lists the candidates, evaluates the rules, logs
//! every candidate with its verdict and, unless it is a dry run, deletes
//! what no rule keeps, indexes before the manifests they list. Every
//! deletion is its own transaction through `Registry::delete`; a stop
//! request is honoured between repositories and between deletions.
//!
//! Restarting is safe: a run whose worker died finds its tasks again,
//! skips the finished ones and starts the others over. Re-evaluating a
//! repository some of whose artifacts are already gone keeps the same
//! artifacts, since those that a rule kept are still there to win again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use wharf_jobs::{JobContext, JobFailure, JobHandler, Outcome};
use wharf_oci::{Digest, ErrorCode, Reference, RepositoryName};
use wharf_registry::seams::Principal;
use wharf_registry::{Registry, RegistryError};

use super::ACTOR;
use super::evaluate::{Candidate, Verdict, evaluate};
use super::policy::Rule;
use super::store::{
    Task, TaskStatus, append_task_log, ensure_tasks, finish_task, get_policy, run_is_dry,
    run_policy_id, start_task, stop_unfinished_tasks,
};
use crate::artifacts::{
    Artifact, ArtifactSearch, ArtifactSort, DeleteFailure, delete_with_dependents, find_artifact,
    search_artifacts, tags_of,
};
use crate::error::Error;
use crate::immutability::{RuleSet, enabled_rules};
use crate::{Page, get_project};

/// Attempts of a manual run before its execution is marked `Error`
/// (Harbor's `MaxFails`).
pub const MAX_ATTEMPTS: u16 = 3;

/// Log lines written to a task's log at a time while deleting.
const LOG_BATCH: usize = 20;

/// The retention job handler. Register it with
/// `jobs.register(retention::KIND, Arc::new(RetentionJob::new(registry)))`.
#[derive(Clone)]
pub struct RetentionJob {
    registry: Registry,
}

impl RetentionJob {
    /// Delete through `registry`, which must be built with the server's
    /// admission and event seams so immutability, quota release and the
    /// audit log apply to retention's deletes as to `/v2`'s.
    pub fn new(registry: Registry) -> Self {
        RetentionJob { registry }
    }
}

/// What a run did, summed over its repositories.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    repositories: i64,
    total: i64,
    retained: i64,
}

impl Totals {
    fn result(self, dry_run: bool) -> Value {
        let deleted = self.total - self.retained;
        json!({
            "dry_run": dry_run,
            "repositories": self.repositories,
            "total": self.total,
            "retained": self.retained,
            if dry_run { "would_delete" } else { "deleted" }: deleted,
        })
    }
}

fn retry(e: Error) -> JobFailure {
    match e {
        Error::Database(cause) => JobFailure::from(cause),
        other => JobFailure::Retry(other.to_string()),
    }
}

#[async_trait]
impl JobHandler for RetentionJob {
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<(), JobFailure> {
        let policy_id = run_policy_id(&payload)
            .ok_or_else(|| JobFailure::Fatal("the run names no retention policy".into()))?;
        let dry_run = run_is_dry(&payload);
        let execution_id = ctx
            .execution_id
            .ok_or_else(|| JobFailure::Fatal("a retention run needs an execution".into()))?;
        let policy = match get_policy(&ctx.pool, policy_id).await {
            Ok(policy) => policy,
            Err(Error::NotFound) => {
                return Err(JobFailure::Fatal(format!(
                    "retention policy {policy_id} no longer exists"
                )));
            }
            Err(e) => return Err(retry(e)),
        };
        let project = match get_project(&ctx.pool, policy.spec.project_id).await {
            Ok(project) => project,
            Err(Error::NotFound) => {
                // A deleted project keeps its policy row (projects are
                // deleted softly); stop its schedule from firing for nothing.
                wharf_jobs::delete_schedule(&ctx.pool, &super::schedule_name(policy_id)).await?;
                return Err(JobFailure::Fatal(format!(
                    "the project of retention policy {policy_id} no longer exists"
                )));
            }
            Err(e) => return Err(retry(e)),
        };
        ctx.log(format!(
            "retention policy {policy_id} of project {}{}: {} rules",
            project.name,
            if dry_run {
                " (dry run: nothing is deleted)"
            } else {
                ""
            },
            policy.spec.rules.len()
        ))
        .await;
        for rule in &policy.spec.rules {
            let state = if rule.disabled { " (disabled)" } else { "" };
            ctx.log(format!("{}{state}", rule.describe())).await;
        }
        let mut totals = Totals::default();
        if ctx.stop_requested().await? {
            ctx.log("stopped before it began").await;
            finish(&ctx, execution_id, totals, dry_run).await;
            return Ok(());
        }

        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM repositories WHERE project = $1 ORDER BY name")
                .bind(&project.name)
                .fetch_all(&ctx.pool)
                .await?;
        let in_scope: Vec<String> = names
            .into_iter()
            .filter(|name| !policy.spec.rules_for(name_in_project(name)).is_empty())
            .collect();
        let tasks = ensure_tasks(&ctx.pool, execution_id, &in_scope)
            .await
            .map_err(retry)?;
        ctx.log(format!(
            "{} repositories in scope{}",
            tasks.len(),
            if ctx.resumed {
                " (resuming: finished ones are skipped)"
            } else {
                ""
            }
        ))
        .await;
        let immutable = enabled_rules(&ctx.pool, project.id).await.map_err(retry)?;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&ctx.pool)
            .await?;

        let run = Run {
            pool: &ctx.pool,
            registry: &self.registry,
            ctx: &ctx,
            immutable: &immutable,
            dry_run,
            now,
        };
        for task in &tasks {
            if task.status.is_final() {
                totals.add(task);
                continue;
            }
            if ctx.stop_requested().await? {
                stop_unfinished_tasks(&ctx.pool, execution_id)
                    .await
                    .map_err(retry)?;
                ctx.log(format!("stopped before {}", task.repository)).await;
                finish(&ctx, execution_id, totals, dry_run).await;
                return Ok(());
            }
            let rules = policy.spec.rules_for(name_in_project(&task.repository));
            let done = run.repository(task, &rules).await?;
            ctx.log(format!(
                "{}: {} artifacts, {} retained{}",
                task.repository,
                done.total,
                done.retained,
                if done.status == TaskStatus::Stopped {
                    " (stopped)"
                } else {
                    ""
                }
            ))
            .await;
            totals.add(&done);
            if done.status == TaskStatus::Stopped {
                stop_unfinished_tasks(&ctx.pool, execution_id)
                    .await
                    .map_err(retry)?;
                finish(&ctx, execution_id, totals, dry_run).await;
                return Ok(());
            }
        }
        ctx.log(format!(
            "done: {} artifacts in {} repositories, {} retained, {} {}",
            totals.total,
            totals.repositories,
            totals.retained,
            totals.total - totals.retained,
            if dry_run {
                "would be deleted"
            } else {
                "deleted"
            }
        ))
        .await;
        finish(&ctx, execution_id, totals, dry_run).await;
        Ok(())
    }
}

impl Totals {
    fn add(&mut self, task: &Task) {
        self.repositories += 1;
        self.total += i64::from(task.total);
        self.retained += i64::from(task.retained);
    }
}

/// Record the run's result; `Success` becomes `Stopped` when a stop was
/// requested, and the dispatcher's own finish afterwards is a no-op.
/// The end and its `TAG_RETENTION` webhook commit together, so the
/// webhook goes out once for the run (the first finish wins).
async fn finish(ctx: &JobContext, execution_id: i64, totals: Totals, dry_run: bool) {
    let finished = async {
        let mut tx = ctx.pool.begin().await?;
        let first = wharf_jobs::finish(
            &mut *tx,
            execution_id,
            Outcome::Success,
            Some(totals.result(dry_run)),
        )
        .await?;
        if first {
            crate::webhooks::outbox::record_retention_finished(&mut tx, execution_id).await?;
        }
        tx.commit().await?;
        Ok::<_, wharf_jobs::JobsError>(())
    };
    if let Err(e) = finished.await {
        tracing::warn!(execution = execution_id, error = %e, "could not record the retention result");
    }
}

/// `team/sub/app` → `sub/app`: what repository selectors see.
pub(crate) fn name_in_project(repository: &str) -> &str {
    repository
        .split_once('/')
        .map_or(repository, |(_, rest)| rest)
}

/// What one run needs while it works through its repositories.
struct Run<'a> {
    pool: &'a PgPool,
    registry: &'a Registry,
    ctx: &'a JobContext,
    immutable: &'a RuleSet,
    dry_run: bool,
    now: DateTime<Utc>,
}

/// What a deletion came to.
enum Deletion {
    /// Gone, with the digests of what went with it.
    Deleted(Vec<String>),
    /// Someone else deleted it first.
    AlreadyGone,
    /// Not deleted, for this reason (an index lists it, a rule made a tag
    /// immutable since the evaluation).
    Kept(String),
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn describe(c: &Candidate) -> String {
    let tags = if c.tags.is_empty() {
        "<untagged>".to_owned()
    } else {
        c.tags.join(",")
    };
    format!(
        "{} tags={tags} pushed={} pulled={}",
        c.digest,
        when(Some(c.push_time)),
        when(c.pull_time)
    )
}

impl Run<'_> {
    /// Evaluate one repository and delete what goes; returns the finished
    /// task.
    async fn repository(&self, task: &Task, rules: &[&Rule]) -> Result<Task, JobFailure> {
        start_task(self.pool, task.id).await.map_err(retry)?;
        let mut done = task.clone();
        done.total = 0;
        done.retained = 0;
        let mut log = vec![format!(
            "Repository {}{}",
            task.repository,
            if self.dry_run {
                " (dry run: the artifacts marked DEL would be deleted; nothing is)"
            } else {
                ""
            }
        )];
        if rules.is_empty() {
            log.push("no enabled rule selects this repository any more: nothing to do".into());
            append_task_log(self.pool, task.id, &log)
                .await
                .map_err(retry)?;
            finish_task(self.pool, task.id, TaskStatus::Success, 0, 0)
                .await
                .map_err(retry)?;
            done.status = TaskStatus::Success;
            return Ok(done);
        }
        for rule in rules {
            log.push(format!("applies {}", rule.describe()));
        }
        let Ok(name) = RepositoryName::parse(&task.repository) else {
            return Err(JobFailure::Fatal(format!(
                "stored repository name {:?} is invalid",
                task.repository
            )));
        };
        let (candidates, indexes) = self.candidates(&task.repository).await?;
        let verdicts = evaluate(rules, &candidates, self.now);
        let total = candidates.len() as i32;
        let mut retained = 0;
        let mut doomed: Vec<&Candidate> = Vec::new();
        log.push(format!("{total} artifacts"));
        for (candidate, verdict) in candidates.iter().zip(&verdicts) {
            match verdict {
                Verdict::Retain(ids) => {
                    retained += 1;
                    let by: Vec<String> = ids.iter().map(|id| format!("rule {id}")).collect();
                    log.push(format!(
                        "RETAIN {} (kept by {})",
                        describe(candidate),
                        by.join(", ")
                    ));
                }
                Verdict::Delete => {
                    let protected = candidate.tags.iter().find_map(|t| {
                        self.immutable
                            .protecting(&task.repository, t)
                            .map(|r| (t, r))
                    });
                    if let Some((tag, rule)) = protected {
                        retained += 1;
                        log.push(format!(
                            "RETAIN {} (no rule keeps it, but its tag {tag} is immutable: {})",
                            describe(candidate),
                            rule.describe()
                        ));
                    } else {
                        doomed.push(candidate);
                    }
                }
            }
        }
        // Indexes first, so the manifests they list are free to go after.
        doomed.sort_by_key(|c| !indexes.contains(&c.id));
        if self.dry_run {
            for candidate in &doomed {
                log.push(format!("DEL {} (kept by no rule)", describe(candidate)));
            }
            append_task_log(self.pool, task.id, &log)
                .await
                .map_err(retry)?;
            finish_task(self.pool, task.id, TaskStatus::Success, total, retained)
                .await
                .map_err(retry)?;
            done.total = total;
            done.retained = retained;
            done.status = TaskStatus::Success;
            return Ok(done);
        }
        append_task_log(self.pool, task.id, &log)
            .await
            .map_err(retry)?;
        log.clear();
        let mut status = TaskStatus::Success;
        for (i, candidate) in doomed.iter().enumerate() {
            if self.ctx.stop_requested().await? {
                let left = doomed.len() - i;
                retained += left as i32;
                log.push(format!("stopped: {left} artifacts kept that no rule keeps"));
                status = TaskStatus::Stopped;
                break;
            }
            match self.delete(&name, candidate).await {
                Ok(Deletion::Deleted(with)) if with.is_empty() => {
                    log.push(format!("DEL {} (kept by no rule)", describe(candidate)));
                }
                Ok(Deletion::Deleted(with)) => {
                    log.push(format!(
                        "DEL {} (kept by no rule; with it went {})",
                        describe(candidate),
                        with.join(", ")
                    ));
                }
                Ok(Deletion::AlreadyGone) => {
                    log.push(format!("DEL {} (already deleted)", describe(candidate)));
                }
                Ok(Deletion::Kept(reason)) => {
                    retained += 1;
                    log.push(format!("RETAIN {} ({reason})", describe(candidate)));
                }
                Err(e) => {
                    retained += 1;
                    log.push(format!("ERR {} (not deleted: {e})", describe(candidate)));
                }
            }
            if log.len() >= LOG_BATCH {
                append_task_log(self.pool, task.id, &log)
                    .await
                    .map_err(retry)?;
                log.clear();
            }
        }
        log.push(format!(
            "{total} artifacts, {retained} retained, {} deleted",
            total - retained
        ));
        append_task_log(self.pool, task.id, &log)
            .await
            .map_err(retry)?;
        finish_task(self.pool, task.id, status, total, retained)
            .await
            .map_err(retry)?;
        done.total = total;
        done.retained = retained;
        done.status = status;
        Ok(done)
    }

    /// The artifacts the repository lists, as candidates (newest push
    /// first), and which of them are indexes.
    async fn candidates(
        &self,
        repository: &str,
    ) -> Result<(Vec<Candidate>, std::collections::HashSet<i64>), JobFailure> {
        let repository_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repository)
                .fetch_optional(self.pool)
                .await?;
        let Some(repository_id) = repository_id else {
            return Ok((Vec::new(), Default::default()));
        };
        // By id, oldest first: a push during the listing lands on a later
        // page instead of shifting rows across pages.
        let mut artifacts: Vec<Artifact> = Vec::new();
        let mut page = 1;
        loop {
            let search = ArtifactSearch {
                repository_id,
                sort: vec![(ArtifactSort::Id, false)],
                page: Page {
                    page,
                    page_size: Page::MAX_SIZE,
                },
                ..ArtifactSearch::default()
            };
            let listing = search_artifacts(self.pool, &search).await.map_err(retry)?;
            let full = listing.items.len() == Page::MAX_SIZE as usize;
            artifacts.extend(listing.items);
            if !full {
                break;
            }
            page += 1;
        }
        let ids: Vec<i64> = artifacts.iter().map(|a| a.id).collect();
        let mut tags = tags_of(self.pool, &ids).await.map_err(retry)?;
        let indexes = artifacts
            .iter()
            .filter(|a| a.is_index())
            .map(|a| a.id)
            .collect();
        let mut candidates: Vec<Candidate> = artifacts
            .into_iter()
            .map(|a| {
                let tags = tags.remove(&a.id).unwrap_or_default();
                let push_time = tags
                    .iter()
                    .map(|t| t.push_time)
                    .fold(a.push_time, DateTime::max);
                let pull_time = tags
                    .iter()
                    .filter_map(|t| t.pull_time)
                    .fold(a.pull_time, |acc, t| Some(acc.map_or(t, |a| a.max(t))));
                let mut names: Vec<String> = tags.into_iter().map(|t| t.name).collect();
                names.sort();
                Candidate {
                    id: a.id,
                    digest: a.digest,
                    tags: names,
                    push_time,
                    pull_time,
                }
            })
            .collect();
        candidates.sort_by(|a, b| b.push_time.cmp(&a.push_time).then(b.id.cmp(&a.id)));
        Ok((candidates, indexes))
    }

    /// Delete an artifact as the artifact API does: the manifest with its
    /// tags, then its accessories and the children only it listed. An
    /// artifact another index lists is kept (deleting it would break that
    /// index), and so is one pushed or tagged again since the evaluation
    /// (the verdict was about what it was then).
    async fn delete(
        &self,
        name: &RepositoryName,
        candidate: &Candidate,
    ) -> Result<Deletion, String> {
        let digest = candidate.digest.as_str();
        let db = |e: sqlx::Error| format!("database error: {e}");
        let listed_by: Option<String> = sqlx::query_scalar(
            "SELECT p.digest FROM manifest_references mr
               JOIN manifests p ON p.id = mr.manifest_id
               JOIN repositories r ON r.id = p.repository_id
              WHERE r.name = $1 AND mr.kind = 'manifest' AND mr.digest = $2 AND p.digest <> $2
              LIMIT 1",
        )
        .bind(name.as_str())
        .bind(digest)
        .fetch_optional(self.pool)
        .await
        .map_err(db)?;
        if let Some(index) = listed_by {
            return Ok(Deletion::Kept(format!(
                "not deleted: the index {index} lists it"
            )));
        }
        let parsed = Digest::parse(digest).map_err(|e| e.to_string())?;
        let artifact = match find_artifact(self.pool, name, &Reference::Digest(parsed)).await {
            Ok(artifact) => artifact,
            Err(Error::NotFound) => return Ok(Deletion::AlreadyGone),
            Err(e) => return Err(e.to_string()),
        };
        if artifact.push_time > candidate.push_time {
            return Ok(Deletion::Kept(
                "not deleted: pushed or tagged again since the evaluation".into(),
            ));
        }
        let actor = Principal {
            name: Some(ACTOR.to_owned()),
            client_addr: None,
        };
        match delete_with_dependents(self.pool, self.registry, name, artifact, actor).await {
            Ok(with) => Ok(Deletion::Deleted(with)),
            Err(DeleteFailure::Registry(RegistryError::Distribution(d)))
                if d.code == ErrorCode::ManifestUnknown =>
            {
                Ok(Deletion::AlreadyGone)
            }
            Err(DeleteFailure::Registry(RegistryError::Distribution(d)))
                if d.code == ErrorCode::Denied =>
            {
                Ok(Deletion::Kept(format!("refused: {}", d.message)))
            }
            Err(DeleteFailure::Registry(e)) => Err(e.to_string()),
            Err(DeleteFailure::Database(e)) => Err(e.to_string()),
        }
    }
}
