//! `/retentions`: tag retention policies, their runs (executions), the
//! runs' per-repository tasks and task logs, as Harbor's `retention` API.
//!
//! Every endpoint needs a signed-in caller (401 otherwise, as Harbor's
//! `Prepare`). Access is the `tag-retention` resource of the policy's
//! project, with Harbor's actions: `read` for the policy and task logs,
//! `create`, `update` (also to run and stop runs), `delete`, `list` for
//! runs and tasks. A policy of a project the caller may not see is "not
//! found", like one that does not exist; creating one for such a project
//! is answered as Harbor answers a missing project (400 `invalid Project
//! id`). The domain is [`crate::retention`]; runs go to the workers of
//! `wharf_jobs` as jobs of kind [`retention::KIND`].

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{OpenApi, ToSchema};
use wharf_jobs::Execution;

use super::error::{ErrorsBody, resource};
use super::schedules::{jobs_error, trigger_name};
use super::{
    ApiError, ApiResult, PageParams, created_at, paginated, require, require_authenticated,
};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::projects::get_project;
use crate::retention::store::{
    Policy, Task, TaskStatus, create_policy, delete_policy, get_policy, get_task, is_run_of,
    list_runs, list_tasks, run_is_dry, update_policy,
};
use crate::retention::{
    self, PolicyDocument, PolicySpec, RuleDocument, ScopeDocument, SelectorDocument,
    TriggerDocument,
};
use crate::security::{Caller, ProjectAccess};

/// The RBAC resource of these endpoints.
const RESOURCE: &str = "tag-retention";

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        get_metadata,
        create_retention,
        get_retention,
        update_retention,
        delete_retention,
        trigger_execution,
        list_executions,
        operate_execution,
        list_tasks_handler,
        get_task_log
    ),
    components(schemas(
        PolicyDocument,
        RuleDocument,
        SelectorDocument,
        TriggerDocument,
        ScopeDocument,
        RetentionMetadata,
        RetentionRuleMetadata,
        RetentionRuleParamMetadata,
        RetentionSelectorMetadata,
        RetentionExecution,
        RetentionExecutionTask,
        ExecutionRequest,
        OperateRequest
    ))
)]
pub struct Doc;

/// Mount this module's routes (`metadatas` before `{id}`, so it is not
/// read as an id).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/retentions/metadatas").route(web::get().to(get_metadata)))
        .service(resource("/retentions").route(web::post().to(create_retention)))
        .service(
            resource("/retentions/{id}")
                .route(web::get().to(get_retention))
                .route(web::put().to(update_retention))
                .route(web::delete().to(delete_retention)),
        )
        .service(
            resource("/retentions/{id}/executions")
                .route(web::post().to(trigger_execution))
                .route(web::get().to(list_executions)),
        )
        .service(
            resource("/retentions/{id}/executions/{eid}").route(web::patch().to(operate_execution)),
        )
        .service(
            resource("/retentions/{id}/executions/{eid}/tasks")
                .route(web::get().to(list_tasks_handler)),
        )
        .service(
            resource("/retentions/{id}/executions/{eid}/tasks/{tid}")
                .route(web::get().to(get_task_log)),
        );
}

/// Harbor's `RetentionMetadata`: what policies may be made of.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionMetadata {
    /// The rule templates.
    pub templates: Vec<RetentionRuleMetadata>,
    /// The repository selectors.
    pub scope_selectors: Vec<RetentionSelectorMetadata>,
    /// The tag selectors.
    pub tag_selectors: Vec<RetentionSelectorMetadata>,
}

/// One rule template.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionRuleMetadata {
    /// The template id (`latestPushedK`, ...).
    pub rule_template: &'static str,
    /// How a console shows it (`#` stands for the parameter).
    pub display_text: &'static str,
    /// Always `retain`.
    pub action: &'static str,
    /// Its parameter, if any (named like the template).
    pub params: Vec<RetentionRuleParamMetadata>,
}

/// A template's parameter.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionRuleParamMetadata {
    /// `int`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `COUNT` or `DAYS`.
    pub unit: &'static str,
    /// Always true.
    pub required: bool,
}

/// A kind of selector and its decorations.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionSelectorMetadata {
    /// `Repositories` or `Tags`.
    pub display_text: &'static str,
    /// `doublestar`.
    pub kind: &'static str,
    /// `repoMatches`/`repoExcludes` or `matches`/`excludes`.
    pub decorations: Vec<&'static str>,
}

/// Harbor's `RetentionExecution`: one run of a policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionExecution {
    /// The execution's id.
    pub id: i64,
    /// The policy it ran.
    pub policy_id: i64,
    /// When it was triggered.
    pub start_time: DateTime<Utc>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// `Pending`, `Running`, `Stopping`, `Stopped`, `Error` or `Success`.
    pub status: String,
    /// `MANUAL` or `SCHEDULE`.
    pub trigger: String,
    /// Whether it deleted nothing.
    pub dry_run: bool,
}

/// Harbor's `RetentionExecutionTask`: one repository of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionExecutionTask {
    /// The task's id.
    pub id: i64,
    /// Its run.
    pub execution_id: i64,
    /// The repository's full name.
    pub repository: String,
    /// Harbor's job id; Wharf runs a whole run as one job: its execution id.
    pub job_id: String,
    /// `Pending`, `Running`, `Stopped`, `Error` or `Success`.
    pub status: String,
    /// Harbor's status code: 0 pending, 2 running, 3 finished.
    pub status_code: i32,
    /// Always 0.
    pub status_revision: i64,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Artifacts considered.
    pub total: i32,
    /// Of those, how many stay.
    pub retained: i32,
}

/// The body of `POST /retentions/{id}/executions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ExecutionRequest {
    /// Evaluate and log only; delete nothing.
    pub dry_run: bool,
}

/// The body of `PATCH /retentions/{id}/executions/{eid}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct OperateRequest {
    /// Only `stop`.
    pub action: String,
}

fn metadata() -> RetentionMetadata {
    let template = |id, text, unit: Option<&'static str>| RetentionRuleMetadata {
        rule_template: id,
        display_text: text,
        action: "retain",
        params: unit
            .map(|unit| RetentionRuleParamMetadata {
                kind: "int",
                unit,
                required: true,
            })
            .into_iter()
            .collect(),
    };
    RetentionMetadata {
        templates: vec![
            template(
                "latestPushedK",
                "the most recently pushed # artifacts",
                Some("COUNT"),
            ),
            template(
                "latestPulledN",
                "the most recently pulled # artifacts",
                Some("COUNT"),
            ),
            template(
                "nDaysSinceLastPush",
                "pushed within the last # days",
                Some("DAYS"),
            ),
            template(
                "nDaysSinceLastPull",
                "pulled within the last # days",
                Some("DAYS"),
            ),
            template("always", "always", None),
        ],
        scope_selectors: vec![RetentionSelectorMetadata {
            display_text: "Repositories",
            kind: "doublestar",
            decorations: vec!["repoMatches", "repoExcludes"],
        }],
        tag_selectors: vec![RetentionSelectorMetadata {
            display_text: "Tags",
            kind: "doublestar",
            decorations: vec!["matches", "excludes"],
        }],
    }
}

fn execution_json(policy_id: i64, e: Execution) -> RetentionExecution {
    RetentionExecution {
        id: e.id,
        policy_id,
        start_time: e.created_at,
        end_time: e.finished_at,
        status: e.status.as_str().to_owned(),
        trigger: trigger_name(e.trigger).to_owned(),
        dry_run: run_is_dry(&e.parameters),
    }
}

fn task_json(t: Task) -> RetentionExecutionTask {
    RetentionExecutionTask {
        id: t.id,
        execution_id: t.execution_id,
        repository: t.repository,
        job_id: t.execution_id.to_string(),
        status: t.status.as_str().to_owned(),
        status_code: match t.status {
            TaskStatus::Pending => 0,
            TaskStatus::Running => 2,
            _ => 3,
        },
        status_revision: 0,
        start_time: t.started_at,
        end_time: t.finished_at,
        total: t.total,
        retained: t.retained,
    }
}

fn policy_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("retention policy {id} not found"))
}

fn execution_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("retention execution {id} not found"))
}

/// The policy `id` and what the caller may do in its project, after
/// requiring `action`: 404 when there is no such policy or the caller may
/// not see its project.
async fn policy_access(
    pool: &PgPool,
    caller: &Caller,
    id: i64,
    action: &str,
) -> ApiResult<(Policy, ProjectAccess)> {
    require_authenticated(caller)?;
    let policy = match get_policy(pool, id).await {
        Ok(policy) => policy,
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    let project = match get_project(pool, policy.spec.project_id).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, &caller.principal, project).await?;
    if !access.can_see() {
        return Err(policy_not_found(id));
    }
    require(caller, &access, RESOURCE, action)?;
    Ok((policy, access))
}

/// The execution `eid`, which must be a run of `policy_id`.
async fn run_of(pool: &PgPool, policy_id: i64, eid: i64) -> ApiResult<Execution> {
    match wharf_jobs::get_execution(pool, eid)
        .await
        .map_err(jobs_error)?
    {
        Some(e) if is_run_of(&e, policy_id) => Ok(e),
        _ => Err(execution_not_found(eid)),
    }
}

/// The audit entry of a change to a policy or its runs (in the change's
/// transaction).
async fn record(
    conn: &mut PgConnection,
    caller: &Caller,
    access: &ProjectAccess,
    operation: &str,
    description: &str,
) -> ApiResult<()> {
    audit::record(
        &mut *conn,
        &AuditEntry {
            project_id: Some(access.project.id),
            username: caller.principal.audit_name(),
            operation,
            description,
            success: true,
            resource_type: "retention",
            resource: &access.project.name,
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    Ok(())
}

/// What retention policies may be made of.
#[utoipa::path(
    get,
    path = "/retentions/metadatas",
    operation_id = "getRentenitionMetadata",
    tag = "retention",
    responses(
        (status = 200, description = "Templates and selectors", body = RetentionMetadata),
        (status = 401, description = "Not signed in", body = ErrorsBody),
    )
)]
pub async fn get_metadata(caller: Caller) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    Ok(HttpResponse::Ok().json(metadata()))
}

/// Create the policy of a project (`scope.ref`), which must not have one
/// yet; 201 with its `Location`. The project's metadata `retention_id`
/// then names it.
#[utoipa::path(
    post,
    path = "/retentions",
    operation_id = "createRetention",
    tag = "retention",
    request_body = PolicyDocument,
    responses(
        (status = 201, description = "Created",
         headers(("Location" = String, description = "/api/v2.0/retentions/{id}"))),
        (status = 400, description = "Invalid policy, rules, selectors or cron; unknown project; the project already has a policy", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create retention policies in the project", body = ErrorsBody),
        (status = 409, description = "Two rules are the same", body = ErrorsBody),
    )
)]
pub async fn create_retention(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<PolicyDocument>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let doc = body.into_inner();
    // The project first, so who may not see it learns nothing about it from
    // the validation of the rest.
    let reference = doc.scope.as_ref().map_or(0, |s| s.reference);
    let invalid_project = || ApiError::bad_request(format!("invalid Project id {reference}"));
    if reference > 0 {
        let project = match get_project(pool.get_ref(), reference).await {
            Ok(project) => project,
            Err(Error::NotFound) => return Err(invalid_project()),
            Err(e) => return Err(e.into()),
        };
        let access = ProjectAccess::load(pool.get_ref(), &caller.principal, project).await?;
        if !access.can_see() {
            return Err(invalid_project());
        }
        require(&caller, &access, RESOURCE, "create")?;
        let spec = PolicySpec::parse(&doc)?;
        let mut tx = pool.begin().await?;
        let policy = match create_policy(&mut tx, &spec).await {
            Ok(policy) => policy,
            Err(Error::NotFound) => return Err(invalid_project()),
            Err(e) => return Err(e.into()),
        };
        record(
            &mut tx,
            &caller,
            &access,
            "create",
            &format!(
                "created retention policy {} with {} rules{}",
                policy.id,
                policy.spec.rules.len(),
                schedule_words(&policy.spec)
            ),
        )
        .await?;
        tx.commit().await?;
        return Ok(created_at(&req, policy.id));
    }
    // No usable scope: the validation says what is missing.
    PolicySpec::parse(&doc)?;
    Err(invalid_project())
}

fn schedule_words(spec: &PolicySpec) -> String {
    match &spec.cron {
        Some(cron) => format!(", scheduled at {cron:?}"),
        None => ", not scheduled".to_owned(),
    }
}

/// One policy.
#[utoipa::path(
    get,
    path = "/retentions/{id}",
    operation_id = "getRetention",
    tag = "retention",
    params(("id" = i64, Path, description = "Retention ID")),
    responses(
        (status = 200, description = "The policy", body = PolicyDocument),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read the project's retention policy", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
    )
)]
pub async fn get_retention(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (policy, _) = policy_access(&pool, &caller, id, "read").await?;
    Ok(HttpResponse::Ok().json(policy.spec.to_document(policy.id)))
}

/// Replace a policy's rules and trigger; an empty cron removes its
/// schedule. The scope cannot change.
#[utoipa::path(
    put,
    path = "/retentions/{id}",
    operation_id = "updateRetention",
    tag = "retention",
    params(("id" = i64, Path, description = "Retention ID")),
    request_body = PolicyDocument,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Invalid policy, rules, selectors or cron", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update the project's retention policy", body = ErrorsBody),
        (status = 404, description = "No such policy, or the scope names another project", body = ErrorsBody),
        (status = 409, description = "Two rules are the same", body = ErrorsBody),
    )
)]
pub async fn update_retention(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<PolicyDocument>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (policy, access) = policy_access(&pool, &caller, id, "update").await?;
    let mut doc = body.into_inner();
    match &doc.scope {
        None => {
            doc.scope = Some(ScopeDocument {
                level: "project".into(),
                reference: policy.spec.project_id,
            });
        }
        Some(scope) if scope.reference != policy.spec.project_id => {
            return Err(ApiError::not_found(format!(
                "the retention policy id {id} does not match project {}",
                scope.reference
            )));
        }
        Some(_) => {}
    }
    let spec = PolicySpec::parse(&doc)?;
    let mut tx = pool.begin().await?;
    let updated = match update_policy(&mut tx, id, &spec).await {
        Ok(updated) => updated,
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    record(
        &mut tx,
        &caller,
        &access,
        "update",
        &format!(
            "updated retention policy {id}: {} rules{}",
            updated.spec.rules.len(),
            schedule_words(&updated.spec)
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a policy and its schedule; the project's `retention_id` goes too.
#[utoipa::path(
    delete,
    path = "/retentions/{id}",
    operation_id = "deleteRetention",
    tag = "retention",
    params(("id" = i64, Path, description = "Retention ID")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete the project's retention policy", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
    )
)]
pub async fn delete_retention(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (_, access) = policy_access(&pool, &caller, id, "delete").await?;
    let mut tx = pool.begin().await?;
    match delete_policy(&mut tx, id).await {
        Ok(()) => {}
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        Err(e) => return Err(e.into()),
    }
    record(
        &mut tx,
        &caller,
        &access,
        "delete",
        &format!("deleted retention policy {id}"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Run a policy now (`{"dry_run": true}` deletes nothing); 201 with the
/// run's `Location`. Runs of one policy go one after another.
#[utoipa::path(
    post,
    path = "/retentions/{id}/executions",
    operation_id = "triggerRetentionExecution",
    tag = "retention",
    params(("id" = i64, Path, description = "Retention ID")),
    request_body = ExecutionRequest,
    responses(
        (status = 201, description = "The run is queued",
         headers(("Location" = String, description = "/api/v2.0/retentions/{id}/executions/{eid}"))),
        (status = 400, description = "Bad id or body", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to run the project's retention policy", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
    )
)]
pub async fn trigger_execution(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<ExecutionRequest>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (policy, access) = policy_access(&pool, &caller, id, "update").await?;
    let dry_run = body.dry_run;
    let mut tx = pool.begin().await?;
    let eid = retention::store::start_run(&mut tx, &policy, dry_run).await?;
    record(
        &mut tx,
        &caller,
        &access,
        "create",
        &format!(
            "started retention execution {eid} of policy {id}{}",
            if dry_run { " (dry run)" } else { "" }
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(created_at(&req, eid))
}

/// Query parameters of the listings.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1–100 (default 10).
    pub page_size: Option<i64>,
}

impl ListParams {
    fn page(&self) -> ApiResult<crate::Page> {
        PageParams {
            page: self.page,
            page_size: self.page_size,
        }
        .page()
    }
}

/// The runs of a policy, newest first.
#[utoipa::path(
    get,
    path = "/retentions/{id}/executions",
    operation_id = "listRetentionExecutions",
    tag = "retention",
    params(("id" = i64, Path, description = "Retention ID"), ListParams),
    responses(
        (status = 200, description = "One page of runs", body = Vec<RetentionExecution>,
         headers(("X-Total-Count" = i64, description = "How many runs there are"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad id or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list the project's retention runs", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
    )
)]
pub async fn list_executions(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let page = params.page()?;
    policy_access(&pool, &caller, id, "list").await?;
    let listing = list_runs(&pool, id, page).await?;
    Ok(paginated(&req, listing, page, |e| execution_json(id, e)))
}

/// Stop a run (`{"action": "stop"}`): a waiting one at once, a running one
/// between repositories or deletions. Stopping a finished run changes
/// nothing.
#[utoipa::path(
    patch,
    path = "/retentions/{id}/executions/{eid}",
    operation_id = "operateRetentionExecution",
    tag = "retention",
    params(
        ("id" = i64, Path, description = "Retention ID"),
        ("eid" = i64, Path, description = "Retention execution ID"),
    ),
    request_body = OperateRequest,
    responses(
        (status = 200, description = "Stop requested"),
        (status = 400, description = "The action is not stop", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to stop the project's retention runs", body = ErrorsBody),
        (status = 404, description = "No such policy or run", body = ErrorsBody),
    )
)]
pub async fn operate_execution(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(i64, i64)>,
    body: web::Json<OperateRequest>,
) -> ApiResult<HttpResponse> {
    let (id, eid) = path.into_inner();
    if body.action != "stop" {
        return Err(ApiError::bad_request("action should be 'stop'"));
    }
    let (_, access) = policy_access(&pool, &caller, id, "update").await?;
    run_of(&pool, id, eid).await?;
    let mut tx = pool.begin().await?;
    if wharf_jobs::request_stop(&mut *tx, eid)
        .await
        .map_err(jobs_error)?
    {
        record(
            &mut tx,
            &caller,
            &access,
            "update",
            &format!("stopped retention execution {eid} of policy {id}"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// The tasks of a run: one per repository in scope.
#[utoipa::path(
    get,
    path = "/retentions/{id}/executions/{eid}/tasks",
    operation_id = "listRetentionTasks",
    tag = "retention",
    params(
        ("id" = i64, Path, description = "Retention ID"),
        ("eid" = i64, Path, description = "Retention execution ID"),
        ListParams,
    ),
    responses(
        (status = 200, description = "One page of tasks", body = Vec<RetentionExecutionTask>,
         headers(("X-Total-Count" = i64, description = "How many tasks there are"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad id or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list the project's retention runs", body = ErrorsBody),
        (status = 404, description = "No such policy or run", body = ErrorsBody),
    )
)]
pub async fn list_tasks_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(i64, i64)>,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let (id, eid) = path.into_inner();
    let page = params.page()?;
    policy_access(&pool, &caller, id, "list").await?;
    run_of(&pool, id, eid).await?;
    let listing = list_tasks(&pool, eid, page).await?;
    Ok(paginated(&req, listing, page, task_json))
}

/// A task's log, as plain text: every artifact of the repository with its
/// verdict (`RETAIN`, `DEL`, `ERR`), its tags, push and pull times and why.
#[utoipa::path(
    get,
    path = "/retentions/{id}/executions/{eid}/tasks/{tid}",
    operation_id = "getRetentionTaskLog",
    tag = "retention",
    params(
        ("id" = i64, Path, description = "Retention ID"),
        ("eid" = i64, Path, description = "Retention execution ID"),
        ("tid" = i64, Path, description = "Retention task ID"),
    ),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read the project's retention runs", body = ErrorsBody),
        (status = 404, description = "No such policy, run or task", body = ErrorsBody),
    )
)]
pub async fn get_task_log(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(i64, i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (id, eid, tid) = path.into_inner();
    policy_access(&pool, &caller, id, "read").await?;
    run_of(&pool, id, eid).await?;
    let (_, log) = match get_task(pool.get_ref(), eid, tid).await {
        Ok(found) => found,
        Err(Error::NotFound) => {
            return Err(ApiError::not_found(format!(
                "retention task {tid} not found"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_part_has_harbors_operations() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let expected = [
            ("/retentions/metadatas", "get", "getRentenitionMetadata"),
            ("/retentions", "post", "createRetention"),
            ("/retentions/{id}", "get", "getRetention"),
            ("/retentions/{id}", "put", "updateRetention"),
            ("/retentions/{id}", "delete", "deleteRetention"),
            (
                "/retentions/{id}/executions",
                "post",
                "triggerRetentionExecution",
            ),
            (
                "/retentions/{id}/executions",
                "get",
                "listRetentionExecutions",
            ),
            (
                "/retentions/{id}/executions/{eid}",
                "patch",
                "operateRetentionExecution",
            ),
            (
                "/retentions/{id}/executions/{eid}/tasks",
                "get",
                "listRetentionTasks",
            ),
            (
                "/retentions/{id}/executions/{eid}/tasks/{tid}",
                "get",
                "getRetentionTaskLog",
            ),
        ];
        for (path, method, id) in expected {
            let op = &doc["paths"][path][method];
            assert_eq!(op["operationId"], id, "{method} {path}");
            assert_eq!(
                op["tags"],
                serde_json::json!(["retention"]),
                "{method} {path}"
            );
        }
        for schema in [
            "RetentionPolicy",
            "RetentionRule",
            "RetentionSelector",
            "RetentionRuleTrigger",
            "RetentionPolicyScope",
            "RetentionMetadata",
            "RetentionExecution",
            "RetentionExecutionTask",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "{schema} missing"
            );
        }
    }

    #[test]
    fn metadata_lists_harbors_templates() {
        let m = serde_json::to_value(metadata()).unwrap();
        let templates: Vec<&str> = m["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["rule_template"].as_str().unwrap())
            .collect();
        assert_eq!(
            templates,
            [
                "latestPushedK",
                "latestPulledN",
                "nDaysSinceLastPush",
                "nDaysSinceLastPull",
                "always"
            ]
        );
        assert_eq!(
            m["templates"][0]["params"],
            serde_json::json!([{"type": "int", "unit": "COUNT", "required": true}])
        );
        assert_eq!(m["templates"][4]["params"], serde_json::json!([]));
        assert_eq!(
            m["tag_selectors"][0]["decorations"],
            serde_json::json!(["matches", "excludes"])
        );
    }
}
