//! The tag retention part of a project's Policy tab: the project's policy
//! (its rules, each enabled or disabled, and its cron), **Dry run** and
//! **Run now**, the runs (stopped while they go) and, per run, its
//! repositories with their logs.
//!
//! Everything goes through `wharf_projects::retention`, the store and
//! validation `/retentions` uses: a change re-reads the stored policy, edits
//! its document and validates the whole policy again ([`PolicySpec::parse`]),
//! so the console can write no policy the API would refuse. A project gets
//! its policy when its first rule is added. Access is the API's
//! `tag-retention` resource in the project.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Map, Value};
use wharf_projects::retention::store::{
    Policy, create_policy, get_policy, get_task, list_runs, list_tasks, policy_id_of_project,
    run_is_dry, start_run, update_policy,
};
use wharf_projects::retention::{
    PolicyDocument, PolicySpec, RuleDocument, ScopeDocument, SelectorDocument, TriggerDocument,
};
use wharf_projects::{Error, Page, ProjectAccess, audit};

use super::{form_failed, ticked, unconfirmed};
use crate::access::{self, ProjectNav, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

/// The RBAC resource of retention.
const RESOURCE: &str = "tag-retention";

/// The templates the form offers (Harbor's metadata): id, how it reads with
/// `N` for its parameter, and whether it has one.
const TEMPLATES: [(&str, &str, bool); 5] = [
    ("latestPushedK", "the latest N pushed", true),
    ("latestPulledN", "the latest N pulled", true),
    (
        "nDaysSinceLastPush",
        "those pushed in the last N days",
        true,
    ),
    (
        "nDaysSinceLastPull",
        "those pulled in the last N days",
        true,
    ),
    ("always", "always", false),
];

struct RuleRow {
    /// Its position in the policy, from 1 (the policy's rule id).
    number: i64,
    description: String,
    disabled: bool,
}

struct RunRow {
    id: i64,
    /// Waiting or running: it can be stopped.
    going: bool,
    status: String,
    badge: &'static str,
    trigger: &'static str,
    dry_run: bool,
    started: String,
    finished: String,
    url: String,
}

#[derive(Template)]
#[template(path = "retention.html")]
struct RetentionPage {
    chrome: Chrome,
    nav: ProjectNav,
    has_policy: bool,
    rules: Vec<RuleRow>,
    cron: String,
    runs: Vec<RunRow>,
    pager: Pager,
    templates: Vec<(&'static str, &'static str, bool)>,
    subtab: &'static str,
    can_create: bool,
    can_update: bool,
    can_run: bool,
}

fn here(project: &str) -> String {
    project_url(project, "/policy/retention")
}

/// The project and the viewer's access, after requiring `action` on
/// retention.
async fn retention_access(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    action: &str,
) -> UiResult<ProjectAccess> {
    let access = access::project(services.pool.get_ref(), viewer, project).await?;
    access::require(&access, RESOURCE, action)?;
    Ok(access)
}

/// The project's policy, if it has one.
async fn policy_of(services: &Services, access: &ProjectAccess) -> UiResult<Option<Policy>> {
    let pool = services.pool.get_ref();
    let Some(id) = policy_id_of_project(pool, access.project.id).await? else {
        return Ok(None);
    };
    match get_policy(pool, id).await {
        Ok(policy) => Ok(Some(policy)),
        // Deleted between the two reads (through the API).
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `GET /projects/{project}/policy/retention`.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let access = retention_access(&services, &viewer, &path, "list").await?;
    let policy = policy_of(&services, &access).await?;
    let page = query.page();
    let here = here(&access.project.name);
    let (runs, total) = match &policy {
        Some(policy) => {
            let listing = list_runs(services.pool.get_ref(), policy.id, page).await?;
            let rows = listing
                .items
                .into_iter()
                .map(|e| RunRow {
                    id: e.id,
                    going: is_going(e.status),
                    status: e.status.as_str().to_owned(),
                    badge: format::status_badge(e.status.as_str()),
                    trigger: trigger_word(e.trigger),
                    dry_run: run_is_dry(&e.parameters),
                    started: format::time(e.created_at),
                    finished: format::maybe_time(e.finished_at),
                    url: format!("{here}/runs/{}", e.id),
                })
                .collect();
            (rows, listing.total)
        }
        None => (Vec::new(), 0),
    };
    let rules = policy
        .as_ref()
        .map(|p| {
            p.spec
                .rules
                .iter()
                .map(|r| RuleRow {
                    number: r.id,
                    description: r.describe(),
                    disabled: r.disabled,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(layout::ok(&RetentionPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Tag retention", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "policy"),
        has_policy: policy.is_some(),
        rules,
        cron: policy
            .as_ref()
            .and_then(|p| p.spec.cron.clone())
            .unwrap_or_default(),
        runs,
        pager: Pager::new(&here, &[], page, total),
        templates: TEMPLATES.to_vec(),
        subtab: "retention",
        can_create: access.allows(RESOURCE, "create"),
        can_update: access.allows(RESOURCE, "update"),
        can_run: access.allows(RESOURCE, "update"),
    }))
}

fn is_going(status: wharf_jobs::ExecutionStatus) -> bool {
    use wharf_jobs::ExecutionStatus;
    matches!(
        status,
        ExecutionStatus::Pending | ExecutionStatus::Running | ExecutionStatus::Stopping
    )
}

fn trigger_word(trigger: wharf_jobs::Trigger) -> &'static str {
    match trigger {
        wharf_jobs::Trigger::Manual => "manual",
        wharf_jobs::Trigger::Schedule => "schedule",
        wharf_jobs::Trigger::Event => "event",
    }
}

/// The audit entry the API writes for a change to the policy or its runs.
async fn record(
    tx: &mut sqlx::PgConnection,
    viewer: &Viewer,
    access: &ProjectAccess,
    operation: &str,
    description: &str,
) -> UiResult<()> {
    audit::record(
        &mut *tx,
        &audit_entry(
            viewer,
            Some(access.project.id),
            operation,
            "retention",
            &access.project.name,
            description,
        ),
    )
    .await?;
    Ok(())
}

/// A new policy document for the project: no rules, no schedule.
fn empty_document(project_id: i64) -> PolicyDocument {
    PolicyDocument {
        id: 0,
        algorithm: "or".into(),
        rules: Vec::new(),
        trigger: Some(cron_trigger("")),
        scope: Some(ScopeDocument {
            level: "project".into(),
            reference: project_id,
        }),
    }
}

fn cron_trigger(cron: &str) -> TriggerDocument {
    TriggerDocument {
        kind: "Schedule".into(),
        settings: Map::from_iter([("cron".to_owned(), Value::String(cron.to_owned()))]),
        references: None,
    }
}

/// Validate `edit` of the project's policy (a new, empty one when it has
/// none) and store it, audited as `description`, in one transaction.
async fn change_policy(
    services: &Services,
    viewer: &Viewer,
    access: &ProjectAccess,
    edit: impl FnOnce(&mut PolicyDocument) -> UiResult<()>,
    description: impl FnOnce(&PolicySpec) -> String,
) -> UiResult<()> {
    let existing = policy_of(services, access).await?;
    let mut doc = match &existing {
        Some(policy) => policy.spec.to_document(policy.id),
        None => empty_document(access.project.id),
    };
    edit(&mut doc)?;
    let spec = match PolicySpec::parse(&doc) {
        Err(Error::Conflict(m)) => return Err(UiError::BadRequest(m)),
        other => other?,
    };
    let mut tx = services.pool.begin().await?;
    let (operation, stored) = match &existing {
        Some(policy) => ("update", update_policy(&mut tx, policy.id, &spec).await?),
        None => ("create", create_policy(&mut tx, &spec).await?),
    };
    record(
        &mut tx,
        viewer,
        access,
        operation,
        &format!(
            "{} retention policy {}",
            description(&stored.spec),
            stored.id
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct RuleForm {
    template: String,
    count: Option<String>,
    repo_decoration: String,
    repo_pattern: String,
    tag_decoration: String,
    tag_pattern: String,
    untagged: Option<String>,
}

/// The rule a form describes, as Harbor's document (validated with the
/// whole policy).
fn rule_document(form: &RuleForm) -> UiResult<RuleDocument> {
    let Some(&(template, _, with_count)) = TEMPLATES.iter().find(|t| t.0 == form.template) else {
        return Err(UiError::BadRequest("Choose what the rule retains.".into()));
    };
    let mut params = Map::new();
    if with_count {
        let count = form.count.as_deref().unwrap_or("").trim();
        let n: i64 = count.parse().map_err(|_| {
            UiError::BadRequest(format!("N must be a whole number, not {count:?}."))
        })?;
        params.insert(template.to_owned(), Value::from(n));
    }
    let untagged = if ticked(&form.untagged) {
        r#"{"untagged":true}"#
    } else {
        r#"{"untagged":false}"#
    };
    Ok(RuleDocument {
        id: 0,
        priority: 0,
        disabled: false,
        action: "retain".into(),
        template: template.into(),
        params,
        tag_selectors: vec![SelectorDocument {
            kind: "doublestar".into(),
            decoration: form.tag_decoration.clone(),
            pattern: form.tag_pattern.trim().to_owned(),
            extras: untagged.into(),
        }],
        scope_selectors: [(
            "repository".to_owned(),
            vec![SelectorDocument {
                kind: "doublestar".into(),
                decoration: form.repo_decoration.clone(),
                pattern: form.repo_pattern.trim().to_owned(),
                extras: String::new(),
            }],
        )]
        .into(),
    })
}

/// `POST /projects/{project}/policy/retention/rules`.
pub(crate) async fn add_rule(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<RuleForm>,
) -> HttpResponse {
    let back = here(&path);
    let done = async {
        // Adding a rule to a project without a policy creates it.
        let access = retention_access(&services, &viewer, &path, "create").await?;
        if policy_of(&services, &access).await?.is_some() {
            access::require(&access, RESOURCE, "update")?;
        }
        let rule = rule_document(&form)?;
        change_policy(
            &services,
            &viewer,
            &access,
            |doc| {
                doc.rules.push(rule);
                Ok(())
            },
            |spec| format!("added rule {} to", spec.rules.len()),
        )
        .await?;
        Ok(layout::see_other(&back, Some("Retention rule added.")))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "add-retention-rule"))
}

/// The rule numbered `number` (from 1) of a policy document.
fn rule_at(doc: &mut PolicyDocument, number: usize) -> UiResult<&mut RuleDocument> {
    number
        .checked_sub(1)
        .and_then(|i| doc.rules.get_mut(i))
        .ok_or_else(|| UiError::not_found("That retention rule is gone."))
}

#[derive(Deserialize)]
pub(crate) struct EnabledForm {
    enabled: Option<String>,
}

/// `POST /projects/{project}/policy/retention/rules/{number}/enabled`.
pub(crate) async fn set_rule_enabled(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, usize)>,
    PostedForm(form): PostedForm<EnabledForm>,
) -> HttpResponse {
    let (project, number) = path.into_inner();
    let back = here(&project);
    let enabled = form.enabled.as_deref() == Some("true");
    let done = async {
        let access = retention_access(&services, &viewer, &project, "update").await?;
        change_policy(
            &services,
            &viewer,
            &access,
            |doc| {
                rule_at(doc, number)?.disabled = !enabled;
                Ok(())
            },
            |_| {
                format!(
                    "{} rule {number} of",
                    if enabled { "enabled" } else { "disabled" }
                )
            },
        )
        .await?;
        Ok(layout::see_other(
            &back,
            Some(if enabled {
                "Retention rule enabled."
            } else {
                "Retention rule disabled."
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("retention-rule-{number}")))
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    confirm: Option<String>,
}

/// `POST /projects/{project}/policy/retention/rules/{number}/delete`: the
/// rules after it move up one place.
pub(crate) async fn delete_rule(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, usize)>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let (project, number) = path.into_inner();
    let back = here(&project);
    let done = async {
        let access = retention_access(&services, &viewer, &project, "update").await?;
        let policy = policy_of(&services, &access)
            .await?
            .ok_or_else(|| UiError::not_found("The project has no retention policy."))?;
        let rule = number
            .checked_sub(1)
            .and_then(|i| policy.spec.rules.get(i))
            .ok_or_else(|| UiError::not_found("That retention rule is gone."))?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete retention {}?", rule.describe()),
            &back,
        ) {
            return Ok(page);
        }
        change_policy(
            &services,
            &viewer,
            &access,
            |doc| {
                rule_at(doc, number)?;
                doc.rules.remove(number - 1);
                Ok(())
            },
            |_| format!("deleted rule {number} of"),
        )
        .await?;
        Ok(layout::see_other(&back, Some("Retention rule deleted.")))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("retention-rule-{number}")))
}

#[derive(Deserialize)]
pub(crate) struct ScheduleForm {
    cron: String,
}

/// `POST /projects/{project}/policy/retention/schedule`: an empty cron
/// removes the schedule.
pub(crate) async fn set_schedule(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<ScheduleForm>,
) -> HttpResponse {
    let back = here(&path);
    let done = async {
        let access = retention_access(&services, &viewer, &path, "update").await?;
        if policy_of(&services, &access).await?.is_none() {
            return Err(UiError::BadRequest(
                "Add a rule first: the schedule runs the project's rules.".into(),
            ));
        }
        let cron = form.cron.trim().to_owned();
        change_policy(
            &services,
            &viewer,
            &access,
            |doc| {
                doc.trigger = Some(cron_trigger(&cron));
                Ok(())
            },
            |spec| match &spec.cron {
                Some(cron) => format!("scheduled at {cron:?}"),
                None => "removed the schedule of".to_owned(),
            },
        )
        .await?;
        Ok(layout::see_other(
            &back,
            Some(if cron.is_empty() {
                "Retention schedule removed."
            } else {
                "Retention schedule saved."
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "retention-schedule"))
}

#[derive(Deserialize)]
pub(crate) struct RunForm {
    dry_run: Option<String>,
    confirm: Option<String>,
}

/// `POST /projects/{project}/policy/retention/run`: a dry run (`dry_run`
/// set) deletes nothing and needs no confirmation; a real one asks first.
pub(crate) async fn run(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<RunForm>,
) -> HttpResponse {
    let back = here(&path);
    let dry_run = ticked(&form.dry_run);
    let done = async {
        let access = retention_access(&services, &viewer, &path, "update").await?;
        let policy = policy_of(&services, &access).await?.ok_or_else(|| {
            UiError::BadRequest("The project has no retention rules to run.".into())
        })?;
        if !dry_run
            && let Some(page) = unconfirmed(
                &req,
                &viewer,
                &form.confirm,
                "Run tag retention now? Artifacts no rule retains are deleted.",
                &back,
            )
        {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        let eid = start_run(&mut tx, &policy, dry_run).await?;
        record(
            &mut tx,
            &viewer,
            &access,
            "create",
            &format!(
                "started retention execution {eid} of policy {}{}",
                policy.id,
                if dry_run { " (dry run)" } else { "" }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&if dry_run {
                format!("Dry run {eid} started: it deletes nothing.")
            } else {
                format!("Retention run {eid} started.")
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "retention-run"))
}

/// `POST /projects/{project}/policy/retention/runs/{id}/stop`: a waiting
/// run stops at once, a running one between repositories or deletions.
pub(crate) async fn stop_run(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = here(&project);
    let done = async {
        let access = retention_access(&services, &viewer, &project, "update").await?;
        let missing = || UiError::not_found(format!("There is no retention run {id} here."));
        let policy = policy_of(&services, &access).await?.ok_or_else(missing)?;
        wharf_jobs::get_execution(services.pool.get_ref(), id)
            .await?
            .filter(|e| wharf_projects::retention::store::is_run_of(e, policy.id))
            .ok_or_else(missing)?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Stop retention run {id}?"),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        let stopped = wharf_jobs::request_stop(&mut *tx, id).await?;
        if stopped {
            record(
                &mut tx,
                &viewer,
                &access,
                "update",
                &format!("stopped retention execution {id} of policy {}", policy.id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&if stopped {
                format!("Retention run {id} is stopping.")
            } else {
                format!("Retention run {id} had already finished.")
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("retention-run-{id}")))
}

struct TaskRow {
    repository: String,
    status: String,
    badge: &'static str,
    total: i32,
    retained: i32,
    log: String,
}

#[derive(Template)]
#[template(path = "retention_run.html")]
struct RunPage {
    chrome: Chrome,
    nav: ProjectNav,
    id: i64,
    status: String,
    badge: &'static str,
    dry_run: bool,
    trigger: &'static str,
    started: String,
    finished: String,
    tasks: Vec<TaskRow>,
    pager: Pager,
    back: String,
}

/// `GET /projects/{project}/policy/retention/runs/{id}`: a run and, per
/// repository, what it kept and deleted (the task logs).
pub(crate) async fn show_run(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let access = retention_access(&services, &viewer, &project, "list").await?;
    access::require(&access, RESOURCE, "read")?;
    let missing = || UiError::not_found(format!("There is no retention run {id} here."));
    let policy = policy_of(&services, &access).await?.ok_or_else(missing)?;
    let pool = services.pool.get_ref();
    let execution = wharf_jobs::get_execution(pool, id)
        .await?
        .filter(|e| wharf_projects::retention::store::is_run_of(e, policy.id))
        .ok_or_else(missing)?;
    let page: Page = query.page();
    let listing = list_tasks(pool, id, page).await?;
    let mut tasks = Vec::with_capacity(listing.items.len());
    for task in listing.items {
        let log = match get_task(pool, id, task.id).await {
            Ok((_, log)) => log,
            Err(Error::NotFound) => String::new(),
            Err(e) => return Err(e.into()),
        };
        tasks.push(TaskRow {
            status: task.status.as_str().to_owned(),
            badge: format::status_badge(task.status.as_str()),
            repository: task.repository,
            total: task.total,
            retained: task.retained,
            log,
        });
    }
    let back = here(&access.project.name);
    let url = format!("{back}/runs/{id}");
    Ok(layout::ok(&RunPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Retention run {id}", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "policy"),
        id,
        status: execution.status.as_str().to_owned(),
        badge: format::status_badge(execution.status.as_str()),
        dry_run: run_is_dry(&execution.parameters),
        trigger: trigger_word(execution.trigger),
        started: format::time(execution.created_at),
        finished: format::maybe_time(execution.finished_at),
        tasks,
        pager: Pager::new(&url, &[], page, listing.total),
        back,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(template: &str, count: &str) -> RuleForm {
        RuleForm {
            template: template.into(),
            count: Some(count.into()),
            repo_decoration: "repoMatches".into(),
            repo_pattern: " ** ".into(),
            tag_decoration: "matches".into(),
            tag_pattern: "v*".into(),
            untagged: None,
        }
    }

    #[test]
    fn a_rule_form_becomes_a_valid_harbor_rule() {
        let doc = rule_document(&form("latestPushedK", "3")).unwrap();
        let rule = wharf_projects::retention::Rule::parse(1, &doc).unwrap();
        assert_eq!(
            rule.template,
            wharf_projects::retention::Template::LatestPushedK(3)
        );
        assert!(!rule.tags[0].untagged);
        assert_eq!(rule.repositories[0].0.pattern.as_str(), "**");
        // `always` needs no N; the others refuse a missing one.
        assert!(rule_document(&form("always", "")).is_ok());
        assert!(matches!(
            rule_document(&form("nDaysSinceLastPull", "soon")),
            Err(UiError::BadRequest(_))
        ));
        assert!(rule_document(&form("everything", "1")).is_err());
    }
}
