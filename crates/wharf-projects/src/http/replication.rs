//! Harbor's replication API (tag `replication`): policies
//! (`/replication/policies`), their executions (`/replication/executions`:
//! start, stop, list, get) and each execution's tasks with their logs.
//!
//! System administrators only (and robots granted the system
//! `replication-policy` and `replication` resources). One side of a policy is always this Wharf,
//! which Harbor shows as the registry with id 0 named "Local"; the other is
//! a registry of [`super::registries`]. Statuses are Harbor's replication
//! spellings (`InProgress`, `Succeed`, `Failed`, `Stopped`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wharf_jobs::{ExecutionStatus, Trigger};
use wharf_replication::policies::{
    self, ExecutionFilter, ExecutionSummary, Policy, PolicySpec, PolicyTrigger, Task,
};
use wharf_replication::registries::Registries;

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query};
use super::registries::{Registry, body_of, page_of, replication_error};
use super::{ApiError, ApiResult, ApiSettings, PageParams, created_at, paginated, require_system};
use crate::security::Caller;

/// The RBAC resources of these endpoints (Harbor's system resources).
const RESOURCE: &str = "replication";
const POLICY: &str = "replication-policy";

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_policies,
        create_policy,
        get_policy,
        update_policy,
        delete_policy,
        list_executions,
        start_execution,
        get_execution,
        stop_execution,
        list_tasks,
        get_task_log
    ),
    components(schemas(
        ReplicationPolicy,
        ReplicationPolicyBody,
        RegistryRef,
        ReplicationTrigger,
        TriggerSettings,
        ReplicationFilter,
        ReplicationExecution,
        StartReplicationExecution,
        ReplicationTask
    ))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/replication/policies")
            .route(web::get().to(list_policies))
            .route(web::post().to(create_policy)),
    )
    .service(
        resource("/replication/policies/{id}")
            .route(web::get().to(get_policy))
            .route(web::put().to(update_policy))
            .route(web::delete().to(delete_policy)),
    )
    .service(
        resource("/replication/executions")
            .route(web::get().to(list_executions))
            .route(web::post().to(start_execution)),
    )
    .service(
        resource("/replication/executions/{id}")
            .route(web::get().to(get_execution))
            .route(web::put().to(stop_execution)),
    )
    .service(resource("/replication/executions/{id}/tasks").route(web::get().to(list_tasks)))
    .service(
        resource("/replication/executions/{id}/tasks/{task_id}/log")
            .route(web::get().to(get_task_log)),
    );
}

// ---------------------------------------------------------------------------
// Policies.

/// A registry named in a policy body: only its id counts (0: this Wharf).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistryRef {
    #[serde(default)]
    pub id: i64,
}

/// Harbor's `ReplicationTriggerSettings`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TriggerSettings {
    /// Six-field cron of a `scheduled` trigger.
    #[serde(default)]
    pub cron: String,
}

/// Harbor's `ReplicationTrigger`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ReplicationTrigger {
    /// `manual`, `scheduled` or `event_based`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub trigger_settings: Option<TriggerSettings>,
}

/// Harbor's `ReplicationFilter`: `name` and `tag` take a doublestar
/// pattern, `label` a list of label names, `resource` `image` or
/// `artifact`; `decoration` is `matches` (default) or `excludes`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationFilter {
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoration: Option<String>,
}

/// The body of `POST` and `PUT /replication/policies`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplicationPolicyBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub src_registry: Option<RegistryRef>,
    #[serde(default)]
    pub dest_registry: Option<RegistryRef>,
    #[serde(default)]
    pub dest_namespace: Option<String>,
    /// How many leading path components the namespace replaces; -1
    /// (Harbor's default) keeps only the last. Ignored without a namespace.
    #[serde(default)]
    pub dest_namespace_replace_count: Option<i32>,
    #[serde(default)]
    pub trigger: Option<ReplicationTrigger>,
    #[serde(default)]
    pub filters: Vec<ReplicationFilter>,
    #[serde(default)]
    pub replicate_deletion: Option<bool>,
    /// Harbor's older name of `replicate_deletion`.
    #[serde(default)]
    pub deletion: Option<bool>,
    #[serde(rename = "override", default)]
    pub override_tags: Option<bool>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// KB/s per blob stream; -1 or 0 is unlimited.
    #[serde(default)]
    pub speed: Option<i32>,
    #[serde(default)]
    pub copy_by_chunk: Option<bool>,
}

/// Harbor's `ReplicationPolicy`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationPolicy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub src_registry: Registry,
    pub dest_registry: Registry,
    pub dest_namespace: String,
    pub dest_namespace_replace_count: i32,
    pub trigger: ReplicationTrigger,
    pub filters: Vec<ReplicationFilter>,
    pub replicate_deletion: bool,
    pub deletion: bool,
    #[serde(rename = "override")]
    pub override_tags: bool,
    pub enabled: bool,
    pub speed: i32,
    pub copy_by_chunk: bool,
    pub single_active_replication: bool,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// Harbor's registry 0: this Wharf.
fn local_registry(settings: &ApiSettings, at: DateTime<Utc>) -> Registry {
    Registry {
        id: 0,
        name: "Local".into(),
        description: String::new(),
        kind: "harbor".into(),
        url: settings.external_url.clone().unwrap_or_default(),
        insecure: false,
        credential: None,
        status: "healthy".into(),
        creation_time: at,
        update_time: at,
    }
}

async fn side(
    registries: &Registries,
    settings: &ApiSettings,
    id: Option<i64>,
    at: DateTime<Utc>,
) -> ApiResult<Registry> {
    let Some(id) = id else {
        return Ok(local_registry(settings, at));
    };
    match registries.get(id).await.map_err(replication_error)? {
        Some(r) => Ok(Registry::from(r)),
        None => Err(ApiError::internal()),
    }
}

fn filters_json(p: &Policy) -> Vec<ReplicationFilter> {
    let decorated = |excludes: bool| Some(if excludes { "excludes" } else { "matches" }.into());
    let mut out = Vec::new();
    if let Some(name) = &p.name_filter {
        out.push(ReplicationFilter {
            kind: "name".into(),
            value: json!(name),
            decoration: decorated(p.name_excludes),
        });
    }
    if let Some(tag) = &p.tag_filter {
        out.push(ReplicationFilter {
            kind: "tag".into(),
            value: json!(tag),
            decoration: decorated(p.tag_excludes),
        });
    }
    for (labels, excludes) in [(&p.label_include, false), (&p.label_exclude, true)] {
        if !labels.is_empty() {
            out.push(ReplicationFilter {
                kind: "label".into(),
                value: json!(labels),
                decoration: decorated(excludes),
            });
        }
    }
    if let Some(r) = &p.resource_filter {
        out.push(ReplicationFilter {
            kind: "resource".into(),
            value: json!(r),
            decoration: None,
        });
    }
    out
}

async fn policy_json(
    registries: &Registries,
    settings: &ApiSettings,
    p: Policy,
) -> ApiResult<ReplicationPolicy> {
    let src = side(registries, settings, p.src_registry_id, p.created_at).await?;
    let dest = side(registries, settings, p.dest_registry_id, p.created_at).await?;
    let trigger = ReplicationTrigger {
        kind: p.trigger.type_name().into(),
        trigger_settings: Some(TriggerSettings {
            cron: p.trigger.cron().unwrap_or_default().into(),
        }),
    };
    Ok(ReplicationPolicy {
        id: p.id,
        filters: filters_json(&p),
        name: p.name,
        description: p.description,
        src_registry: src,
        dest_registry: dest,
        dest_namespace: p.dest_namespace.unwrap_or_default(),
        dest_namespace_replace_count: p.dest_namespace_replace_count,
        trigger,
        replicate_deletion: p.replicate_deletion,
        deletion: p.replicate_deletion,
        override_tags: p.override_tags,
        enabled: p.enabled,
        speed: p.speed_kb.unwrap_or(-1),
        copy_by_chunk: p.copy_by_chunk,
        single_active_replication: false,
        creation_time: p.created_at,
        update_time: p.updated_at,
    })
}

fn filter_text(f: &ReplicationFilter) -> ApiResult<Option<String>> {
    match &f.value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::bad_request(format!(
            "the value of a {} filter must be a string",
            f.kind
        ))),
    }
}

fn excludes(f: &ReplicationFilter) -> ApiResult<bool> {
    match f.decoration.as_deref() {
        None | Some("") | Some("matches") => Ok(false),
        Some("excludes") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown filter decoration {other:?}: use matches or excludes"
        ))),
    }
}

/// The body as a library spec, with Harbor's API rules checked.
async fn spec_of(registries: &Registries, body: ReplicationPolicyBody) -> ApiResult<PolicySpec> {
    let id_of = |r: &Option<RegistryRef>| r.as_ref().map(|r| r.id).filter(|id| *id != 0);
    let src = id_of(&body.src_registry);
    let dest = id_of(&body.dest_registry);
    for id in [src, dest].into_iter().flatten() {
        if registries
            .get(id)
            .await
            .map_err(replication_error)?
            .is_none()
        {
            return Err(ApiError::bad_request(format!(
                "registry {id} does not exist"
            )));
        }
    }
    let mut spec = PolicySpec {
        name: body.name.trim().to_owned(),
        description: body.description,
        src_registry_id: src,
        dest_registry_id: dest,
        dest_namespace: body
            .dest_namespace
            .map(|n| n.trim().trim_matches('/').to_owned())
            .filter(|n| !n.is_empty()),
        dest_namespace_replace_count: 0,
        override_tags: body.override_tags.unwrap_or(true),
        replicate_deletion: body.replicate_deletion.or(body.deletion).unwrap_or(false),
        speed_kb: body.speed.filter(|s| *s > 0),
        copy_by_chunk: body.copy_by_chunk.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        ..Default::default()
    };
    if body.speed.is_some_and(|s| s < -1) {
        return Err(ApiError::bad_request(
            "speed must be -1 (unlimited) or more",
        ));
    }
    // As in Harbor, the count only applies under a namespace (-1, the
    // default, keeps the last component); without one a repository keeps
    // its path whatever the count.
    spec.dest_namespace_replace_count = match &spec.dest_namespace {
        Some(_) => body.dest_namespace_replace_count.unwrap_or(-1),
        None => 0,
    };
    if src.is_none() && dest.is_none() {
        return Err(ApiError::bad_request(
            "a replication policy needs a remote registry as its source or destination",
        ));
    }
    policies::require_one_local(&spec).map_err(replication_error)?;
    for f in &body.filters {
        match f.kind.as_str() {
            "name" => {
                spec.name_filter = filter_text(f)?;
                spec.name_excludes = excludes(f)?;
            }
            "tag" => {
                spec.tag_filter = filter_text(f)?;
                spec.tag_excludes = excludes(f)?;
            }
            "label" => {
                let names: Vec<String> = match &f.value {
                    Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            ApiError::bad_request("a label filter's value is a list of names")
                        })?,
                    Value::String(s) if !s.is_empty() => vec![s.clone()],
                    Value::Null => Vec::new(),
                    _ => {
                        return Err(ApiError::bad_request(
                            "a label filter's value is a list of names",
                        ));
                    }
                };
                if excludes(f)? {
                    spec.label_exclude.extend(names);
                } else {
                    spec.label_include.extend(names);
                }
            }
            "resource" => spec.resource_filter = filter_text(f)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown filter type {other:?}: use name, tag, label or resource"
                )));
            }
        }
    }
    let trigger = body.trigger.unwrap_or_default();
    spec.trigger = PolicyTrigger::parse(
        &trigger.kind,
        trigger.trigger_settings.as_ref().map(|s| s.cron.as_str()),
    )
    .map_err(replication_error)?;
    policies::validate(&spec).map_err(replication_error)?;
    Ok(spec)
}

async fn name_free(pool: &PgPool, name: &str, except: Option<i64>) -> ApiResult<()> {
    if let Some(existing) = policies::get_policy_by_name(pool, name)
        .await
        .map_err(replication_error)?
        && Some(existing.id) != except
    {
        return Err(ApiError::conflict(format!(
            "a replication policy named {name:?} already exists"
        )));
    }
    Ok(())
}

fn policy_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("replication policy {id} not found"))
}

/// Query of `GET /replication/policies`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPoliciesParams {
    /// Harbor's query: `name` (exact, or `~` for contains).
    pub q: Option<String>,
    /// Deprecated in Harbor: the name contains this.
    pub name: Option<String>,
}

/// The replication policies, by id.
#[utoipa::path(
    get, path = "/replication/policies", tag = "replication", operation_id = "listReplicationPolicies",
    params(
        ListPoliciesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of policies; X-Total-Count and Link headers", body = [ReplicationPolicy]),
        (status = 400, description = "Bad query or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn list_policies(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    registries: web::Data<Registries>,
    settings: web::Data<ApiSettings>,
    params: web::Query<ListPoliciesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, POLICY, "list")?;
    let page = paging.page()?;
    let q = Query::parse(params.q.as_deref(), &["name"])?;
    let mut all = policies::list_policies(&pool)
        .await
        .map_err(replication_error)?;
    match q.get("name") {
        None => {}
        Some(Matcher::Exact(v)) => all.retain(|p| &p.name == v),
        Some(Matcher::Fuzzy(v)) => all.retain(|p| p.name.contains(v.as_str())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key name takes an exact (name=x) or fuzzy (name=~x) value",
            ));
        }
    }
    if let Some(name) = params.name.as_deref().filter(|n| !n.is_empty()) {
        all.retain(|p| p.name.contains(name));
    }
    let listing = page_of(all, page);
    let mut items = Vec::with_capacity(listing.items.len());
    for p in listing.items {
        items.push(policy_json(&registries, &settings, p).await?);
    }
    let listing = crate::Listing {
        items,
        total: listing.total,
    };
    Ok(paginated(&req, listing, page, |p| p))
}

/// Create a policy: 201 with its `Location`. Exactly one of
/// `src_registry` and `dest_registry` is this Wharf (absent or id 0).
#[utoipa::path(
    post, path = "/replication/policies", tag = "replication", operation_id = "createReplicationPolicy",
    request_body(content = ReplicationPolicyBody, description = "E.g. {\"name\":\"to-dr\",\"dest_registry\":{\"id\":1},\"filters\":[{\"type\":\"name\",\"value\":\"library/**\"},{\"type\":\"tag\",\"value\":\"v*\"}],\"trigger\":{\"type\":\"event_based\"},\"override\":true,\"enabled\":true}"),
    responses(
        (status = 201, description = "Created", headers(("Location" = String, description = "/api/v2.0/replication/policies/{id}"))),
        (status = 400, description = "Invalid policy (both sides remote or local, bad filter, cron, trigger)", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 409, description = "A policy with that name exists", body = ErrorsBody),
    )
)]
pub async fn create_policy(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    registries: web::Data<Registries>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, POLICY, "create")?;
    let spec = spec_of(&registries, body_of(body)?).await?;
    name_free(&pool, &spec.name, None).await?;
    let policy = policies::create_policy(&pool, &spec)
        .await
        .map_err(replication_error)?;
    Ok(created_at(&req, policy.id))
}

/// One policy.
#[utoipa::path(
    get, path = "/replication/policies/{id}", tag = "replication", operation_id = "getReplicationPolicy",
    params(("id" = i64, Path, description = "The policy's id")),
    responses(
        (status = 200, description = "The policy", body = ReplicationPolicy),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
    )
)]
pub async fn get_policy(
    caller: Caller,
    pool: web::Data<PgPool>,
    registries: web::Data<Registries>,
    settings: web::Data<ApiSettings>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, POLICY, "read")?;
    let id = path.into_inner();
    let policy = policies::get_policy(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| policy_not_found(id))?;
    Ok(HttpResponse::Ok().json(policy_json(&registries, &settings, policy).await?))
}

/// Replace a policy (its schedule follows its trigger).
#[utoipa::path(
    put, path = "/replication/policies/{id}", tag = "replication", operation_id = "updateReplicationPolicy",
    params(("id" = i64, Path, description = "The policy's id")),
    request_body(content = ReplicationPolicyBody),
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Invalid policy", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
        (status = 409, description = "Another policy has that name", body = ErrorsBody),
    )
)]
pub async fn update_policy(
    caller: Caller,
    pool: web::Data<PgPool>,
    registries: web::Data<Registries>,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, POLICY, "update")?;
    let id = path.into_inner();
    policies::get_policy(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| policy_not_found(id))?;
    let spec = spec_of(&registries, body_of(body)?).await?;
    name_free(&pool, &spec.name, Some(id)).await?;
    policies::update_policy(&pool, id, &spec)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| policy_not_found(id))?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a policy and its schedule; 412 while one of its executions is
/// waiting or running.
#[utoipa::path(
    delete, path = "/replication/policies/{id}", tag = "replication", operation_id = "deleteReplicationPolicy",
    params(("id" = i64, Path, description = "The policy's id")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such policy", body = ErrorsBody),
        (status = 412, description = "An execution of the policy is waiting or running", body = ErrorsBody),
    )
)]
pub async fn delete_policy(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, POLICY, "delete")?;
    let id = path.into_inner();
    policies::get_policy(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| policy_not_found(id))?;
    let active = policies::active_executions(&pool, id)
        .await
        .map_err(replication_error)?;
    if active > 0 {
        return Err(ApiError::precondition(format!(
            "replication policy {id} has {active} executions waiting or running: stop them first"
        )));
    }
    if !policies::delete_policy(&pool, id)
        .await
        .map_err(replication_error)?
    {
        return Err(policy_not_found(id));
    }
    Ok(HttpResponse::Ok().finish())
}

// ---------------------------------------------------------------------------
// Executions and tasks.

/// Harbor's `ReplicationExecution`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationExecution {
    pub id: i64,
    pub policy_id: i64,
    /// `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: String,
    pub status_text: String,
    /// `manual`, `scheduled` or `event_based`.
    pub trigger: String,
    pub start_time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    pub total: i64,
    pub failed: i64,
    pub succeed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

fn status_name(s: ExecutionStatus) -> &'static str {
    match s {
        ExecutionStatus::Pending | ExecutionStatus::Running | ExecutionStatus::Stopping => {
            "InProgress"
        }
        ExecutionStatus::Success => "Succeed",
        ExecutionStatus::Error => "Failed",
        ExecutionStatus::Stopped => "Stopped",
    }
}

fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Manual => "manual",
        Trigger::Schedule => "scheduled",
        Trigger::Event => "event_based",
    }
}

impl From<ExecutionSummary> for ReplicationExecution {
    fn from(e: ExecutionSummary) -> Self {
        ReplicationExecution {
            id: e.id,
            policy_id: e.policy_id,
            status: status_name(e.status).into(),
            status_text: e.status_text,
            trigger: trigger_name(e.trigger).into(),
            start_time: e.started_at.unwrap_or(e.created_at),
            end_time: e.finished_at,
            total: e.total,
            failed: e.failed,
            succeed: e.succeed,
            in_progress: e.in_progress,
            stopped: e.stopped,
        }
    }
}

/// Query of `GET /replication/executions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListExecutionsParams {
    pub policy_id: Option<i64>,
    /// `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: Option<String>,
    /// `manual`, `scheduled` or `event_based`.
    pub trigger: Option<String>,
}

/// Harbor's replication status names as the executions' statuses.
fn parse_status(s: &str) -> ApiResult<Vec<ExecutionStatus>> {
    use ExecutionStatus::*;
    Ok(match s {
        "InProgress" => vec![Pending, Running, Stopping],
        "Succeed" => vec![Success],
        "Failed" => vec![Error],
        "Stopped" => vec![Stopped],
        other => vec![ExecutionStatus::from_name(other).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status {other:?}: use InProgress, Succeed, Failed or Stopped"
            ))
        })?],
    })
}

fn parse_trigger(s: &str) -> ApiResult<Trigger> {
    match s {
        "manual" => Ok(Trigger::Manual),
        "scheduled" => Ok(Trigger::Schedule),
        "event_based" => Ok(Trigger::Event),
        other => Err(ApiError::bad_request(format!(
            "unknown trigger {other:?}: use manual, scheduled or event_based"
        ))),
    }
}

/// The executions, newest first.
#[utoipa::path(
    get, path = "/replication/executions", tag = "replication", operation_id = "listReplicationExecutions",
    params(
        ListExecutionsParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of executions; X-Total-Count and Link headers", body = [ReplicationExecution]),
        (status = 400, description = "Bad status, trigger or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn list_executions(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListExecutionsParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "list")?;
    let page = paging.page()?;
    let filter = ExecutionFilter {
        policy_id: params.policy_id,
        statuses: params
            .status
            .as_deref()
            .map(parse_status)
            .transpose()?
            .unwrap_or_default(),
        trigger: params.trigger.as_deref().map(parse_trigger).transpose()?,
        page: page.page,
        page_size: page.page_size,
    };
    let (items, total) = policies::list_executions(&pool, &filter)
        .await
        .map_err(replication_error)?;
    Ok(paginated(
        &req,
        crate::Listing { items, total },
        page,
        ReplicationExecution::from,
    ))
}

/// Harbor's `StartReplicationExecution`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartReplicationExecution {
    pub policy_id: i64,
}

/// Run a policy now: 201 with the execution's `Location`.
#[utoipa::path(
    post, path = "/replication/executions", tag = "replication", operation_id = "startReplication",
    request_body(content = StartReplicationExecution),
    responses(
        (status = 201, description = "Started", headers(("Location" = String, description = "/api/v2.0/replication/executions/{id}"))),
        (status = 400, description = "No such policy, or it is disabled", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn start_execution(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "create")?;
    let body: StartReplicationExecution = body_of(body)?;
    let id = policies::start_execution(&pool, body.policy_id, Trigger::Manual)
        .await
        .map_err(replication_error)?;
    Ok(created_at(&req, id))
}

fn execution_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("replication execution {id} not found"))
}

/// One execution with its task counts.
#[utoipa::path(
    get, path = "/replication/executions/{id}", tag = "replication", operation_id = "getReplicationExecution",
    params(("id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution", body = ReplicationExecution),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such execution", body = ErrorsBody),
    )
)]
pub async fn get_execution(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let id = path.into_inner();
    let execution = policies::get_execution(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| execution_not_found(id))?;
    Ok(HttpResponse::Ok().json(ReplicationExecution::from(execution)))
}

/// Stop an execution: a waiting one at once, a running one after its
/// current task. Stopping a finished one changes nothing.
#[utoipa::path(
    put, path = "/replication/executions/{id}", tag = "replication", operation_id = "stopReplication",
    params(("id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Stop requested"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such execution", body = ErrorsBody),
    )
)]
pub async fn stop_execution(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "create")?;
    let id = path.into_inner();
    policies::stop_execution(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| execution_not_found(id))?;
    Ok(HttpResponse::Ok().finish())
}

/// Harbor's `ReplicationTask`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationTask {
    pub id: i64,
    pub execution_id: i64,
    /// `Pending`, `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: String,
    /// The queue job's id: Wharf runs one job per execution.
    pub job_id: String,
    /// `copy` or `deletion`.
    pub operation: String,
    /// `image` or `artifact`.
    pub resource_type: String,
    pub src_resource: String,
    pub dst_resource: String,
    pub bytes_copied: i64,
    /// How many times the task was tried.
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
}

fn task_status(task: &Task, execution: &ExecutionSummary) -> &'static str {
    let unfinished = matches!(task.status.as_str(), "Pending" | "Running");
    if unfinished && execution.status.is_final() {
        return "Stopped";
    }
    match task.status.as_str() {
        "Running" => "InProgress",
        "Succeed" => "Succeed",
        "Failed" => "Failed",
        _ => "Pending",
    }
}

/// Query of `GET .../tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasksParams {
    /// `Pending`, `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: Option<String>,
    /// `image` or `artifact`.
    pub resource_type: Option<String>,
}

/// An execution's tasks (one per artifact), in the order they run.
#[utoipa::path(
    get, path = "/replication/executions/{id}/tasks", tag = "replication", operation_id = "listReplicationTasks",
    params(
        ("id" = i64, Path, description = "The execution's id"),
        ListTasksParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of tasks; X-Total-Count and Link headers", body = [ReplicationTask]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such execution", body = ErrorsBody),
    )
)]
pub async fn list_tasks(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    params: web::Query<ListTasksParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "list")?;
    let page = paging.page()?;
    let id = path.into_inner();
    let execution = policies::get_execution(&pool, id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| execution_not_found(id))?;
    let tasks = policies::list_tasks(&pool, id)
        .await
        .map_err(replication_error)?;
    let job_id = id.to_string();
    let all: Vec<ReplicationTask> = tasks
        .iter()
        .map(|t| ReplicationTask {
            id: t.id,
            execution_id: t.execution_id,
            status: task_status(t, &execution).into(),
            job_id: job_id.clone(),
            operation: t.operation.clone(),
            resource_type: t.resource_type.clone(),
            src_resource: t.src_resource.clone(),
            dst_resource: t.dst_resource.clone(),
            bytes_copied: t.bytes_copied,
            attempts: t.attempts,
            start_time: t.started_at,
            end_time: t.finished_at,
        })
        .filter(|t| params.status.as_deref().is_none_or(|s| t.status == s))
        .filter(|t| {
            params
                .resource_type
                .as_deref()
                .is_none_or(|r| t.resource_type == r)
        })
        .collect();
    Ok(paginated(&req, page_of(all, page), page, |t| t))
}

/// A task's log, as plain text.
#[utoipa::path(
    get, path = "/replication/executions/{id}/tasks/{task_id}/log", tag = "replication",
    operation_id = "getReplicationLog",
    params(
        ("id" = i64, Path, description = "The execution's id"),
        ("task_id" = i64, Path, description = "The task's id"),
    ),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such execution or task", body = ErrorsBody),
    )
)]
pub async fn get_task_log(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let (id, task_id) = path.into_inner();
    let task = policies::get_task(&pool, id, task_id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "task {task_id} of replication execution {id} not found"
            ))
        })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(policies::task_log(&task)))
}
