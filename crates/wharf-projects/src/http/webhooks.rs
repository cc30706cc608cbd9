//! `/projects/{project_name_or_id}/webhook/...`: Harbor's webhook API
//! (tags `webhook` and `webhookjob`) over [`crate::webhooks`]. Project
//! admins hold `notification-policy:create/read/update/delete/list`,
//! maintainers `read` and `list` (and robots what they are granted).
//!
//! A delivery (one event for one target) is what Harbor calls a webhook
//! job, and also an execution with its single task; the three listings
//! show the same rows. Each item also carries Wharf's attempt log.
//!
//! Differences from Harbor: `enabled` left out of a new policy means
//! enabled (Harbor reads it as false), and left out of an update keeps the
//! policy's setting; a policy name is required and unique in its project
//! (409 otherwise); an address may not hold credentials.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query, parse_sort};
use super::{
    ApiError, ApiResult, ApiSettings, PageParams, created_at, paginated, project_access, require,
};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::security::{Caller, ProjectAccess};
use crate::webhooks::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, EventType, NotifyType, PayloadFormat, Policy,
    PolicyInput, PolicyQuery, PolicySort, PolicySpec, TargetInput, attempts_of, create_policy,
    delete_policy, delivery_log, get_delivery, get_policy, last_triggers, list_deliveries,
    list_policies, registry_host_of, update_policy,
};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_policies_handler,
        create_policy_handler,
        get_policy_handler,
        update_policy_handler,
        delete_policy_handler,
        list_executions_handler,
        list_tasks_handler,
        get_task_log_handler,
        last_trigger_handler,
        list_jobs_handler,
        supported_event_types_handler,
    ),
    components(schemas(
        WebhookPolicy,
        WebhookTargetObject,
        WebhookJob,
        WebhookAttempt,
        WebhookExecution,
        WebhookTask,
        ExecutionMetrics,
        WebhookLastTrigger,
        SupportedWebhookEventTypes,
        PayloadFormatJson,
    ))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/projects/{project_name_or_id}/webhook";
    cfg.service(
        resource(&format!("{base}/policies"))
            .route(web::get().to(list_policies_handler))
            .route(web::post().to(create_policy_handler)),
    )
    .service(
        resource(&format!("{base}/policies/{{webhook_policy_id}}"))
            .route(web::get().to(get_policy_handler))
            .route(web::put().to(update_policy_handler))
            .route(web::delete().to(delete_policy_handler)),
    )
    .service(
        resource(&format!("{base}/policies/{{webhook_policy_id}}/executions"))
            .route(web::get().to(list_executions_handler)),
    )
    .service(
        resource(&format!(
            "{base}/policies/{{webhook_policy_id}}/executions/{{execution_id}}/tasks"
        ))
        .route(web::get().to(list_tasks_handler)),
    )
    .service(
        resource(&format!(
            "{base}/policies/{{webhook_policy_id}}/executions/{{execution_id}}/tasks/{{task_id}}/log"
        ))
        .route(web::get().to(get_task_log_handler)),
    )
    .service(resource(&format!("{base}/lasttrigger")).route(web::get().to(last_trigger_handler)))
    .service(resource(&format!("{base}/jobs")).route(web::get().to(list_jobs_handler)))
    .service(
        resource(&format!("{base}/events")).route(web::get().to(supported_event_types_handler)),
    );
}

// ---------------------------------------------------------------------------
// Shapes.

/// Harbor's `WebhookTargetObject`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct WebhookTargetObject {
    /// `http` or `slack`.
    #[serde(rename = "type")]
    pub notify_type: String,
    /// An `http://` or `https://` URL.
    pub address: String,
    /// Sent as the `Authorization` header to HTTP targets.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_header: String,
    /// Accept any TLS certificate from this target.
    pub skip_cert_verify: bool,
    /// `Default` or `CloudEvents` for HTTP targets (`Default` when absent);
    /// not allowed for Slack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<String>,
}

/// Harbor's `WebhookPolicy`, as shown and as taken.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct WebhookPolicy {
    /// Ignored on creation; must be absent or the path's id on update.
    pub id: i64,
    /// Required; unique in the project.
    pub name: String,
    pub description: String,
    /// Ignored on the way in: the path names the project.
    pub project_id: i64,
    /// At least one.
    pub targets: Vec<WebhookTargetObject>,
    /// At least one of `/webhook/events`' `event_type`.
    pub event_types: Vec<String>,
    /// Ignored on the way in: the caller.
    pub creator: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<DateTime<Utc>>,
    /// Absent on creation: enabled; absent on update: unchanged.
    pub enabled: Option<bool>,
}

impl From<Policy> for WebhookPolicy {
    fn from(p: Policy) -> Self {
        WebhookPolicy {
            id: p.id,
            name: p.name,
            description: p.description,
            project_id: p.project_id,
            targets: p
                .targets
                .into_iter()
                .map(|t| WebhookTargetObject {
                    notify_type: t.notify_type.as_str().to_owned(),
                    address: t.address,
                    auth_header: t.auth_header,
                    skip_cert_verify: t.skip_cert_verify,
                    payload_format: (t.notify_type == NotifyType::Http)
                        .then(|| t.payload_format.as_str().to_owned()),
                })
                .collect(),
            event_types: p
                .event_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            creator: p.creator,
            creation_time: Some(p.created_at),
            update_time: Some(p.updated_at),
            enabled: Some(p.enabled),
        }
    }
}

fn spec_of(body: &WebhookPolicy, enabled: bool) -> ApiResult<PolicySpec> {
    let input = PolicyInput {
        name: body.name.clone(),
        description: body.description.clone(),
        targets: body
            .targets
            .iter()
            .map(|t| TargetInput {
                notify_type: t.notify_type.clone(),
                address: t.address.clone(),
                auth_header: t.auth_header.clone(),
                skip_cert_verify: t.skip_cert_verify,
                payload_format: t.payload_format.clone(),
            })
            .collect(),
        event_types: body.event_types.clone(),
        enabled: body.enabled.unwrap_or(enabled),
    };
    Ok(PolicySpec::parse(&input)?)
}

/// One attempt of a delivery (Wharf's addition to Harbor's shapes).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttempt {
    /// 1 for the first.
    pub attempt: i32,
    /// `Running`, `Success` or `Error`.
    pub status: String,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<i32>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub start_time: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
}

impl From<Attempt> for WebhookAttempt {
    fn from(a: Attempt) -> Self {
        WebhookAttempt {
            attempt: a.attempt,
            status: a.status,
            response_code: a.response_code,
            error: a.error,
            start_time: a.started_at,
            end_time: a.finished_at,
        }
    }
}

/// Harbor's `WebhookJob` (one delivery), with Wharf's attempt log.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJob {
    pub id: i64,
    pub policy_id: i64,
    pub event_type: String,
    /// `http` or `slack`.
    pub notify_type: String,
    /// `Pending`, `Running`, `Success`, `Error` or `Stopped`.
    pub status: String,
    /// The payload as the target is sent it (JSON text).
    pub job_detail: String,
    #[schema(value_type = String, format = DateTime)]
    pub creation_time: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub update_time: DateTime<Utc>,
    /// Where it goes.
    pub address: String,
    /// `Default` or `CloudEvents` (`Default` for Slack).
    pub payload_format: String,
    /// The `X-Wharf-Delivery` header (and CloudEvents `id`) it is sent with.
    pub event_id: String,
    /// Attempts made so far.
    pub run_count: i32,
    /// The HTTP status of the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<i32>,
    pub status_message: String,
    pub attempts: Vec<WebhookAttempt>,
}

/// Harbor's execution `metrics`.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = Metrics)]
pub struct ExecutionMetrics {
    pub task_count: i64,
    pub success_task_count: i64,
    pub error_task_count: i64,
    pub pending_task_count: i64,
    pub running_task_count: i64,
    pub scheduled_task_count: i64,
    pub stopped_task_count: i64,
}

/// Harbor's `Execution` of a webhook policy: one delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Execution)]
pub struct WebhookExecution {
    pub id: i64,
    /// `WEBHOOK` or `SLACK`.
    pub vendor_type: String,
    /// The policy.
    pub vendor_id: i64,
    pub status: String,
    pub status_message: String,
    pub metrics: ExecutionMetrics,
    /// Always `EVENT`.
    pub trigger: String,
    /// `{"event_type", "payload", "address"}`.
    #[schema(value_type = Object)]
    pub extra_attrs: Value,
    pub start_time: String,
    pub end_time: String,
}

/// Harbor's `Task` of a webhook execution: the delivery again (one task per
/// execution, as in Harbor).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Task)]
pub struct WebhookTask {
    pub id: i64,
    pub execution_id: i64,
    pub status: String,
    pub status_message: String,
    /// Attempts made so far.
    pub run_count: i32,
    #[schema(value_type = Object)]
    pub extra_attrs: Value,
    pub creation_time: String,
    pub update_time: String,
    pub start_time: String,
    pub end_time: String,
}

/// Harbor's `WebhookLastTrigger`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookLastTrigger {
    pub policy_name: String,
    pub event_type: String,
    pub enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub creation_time: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_trigger_time: Option<DateTime<Utc>>,
}

/// Harbor's `PayloadFormat`: the formats of a notify type.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PayloadFormat)]
pub struct PayloadFormatJson {
    pub notify_type: String,
    pub formats: Vec<String>,
}

/// Harbor's `SupportedWebhookEventTypes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportedWebhookEventTypes {
    pub event_type: Vec<String>,
    pub notify_type: Vec<String>,
    pub payload_formats: Vec<PayloadFormatJson>,
}

fn time_text(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The host payloads name in `resource_url` as shown by the API: the
/// configured external URL's, else the one this request came in on.
fn shown_host(req: &HttpRequest, settings: &ApiSettings) -> String {
    settings
        .external_url
        .as_deref()
        .and_then(registry_host_of)
        .unwrap_or_else(|| req.connection_info().host().to_owned())
}

/// The body the target of `d` is sent.
fn rendered(d: &Delivery, host: &str) -> String {
    let host = Some(host);
    let body = match (d.notify_type, d.payload_format) {
        (NotifyType::Slack, _) => d.event.slack_message(host),
        (NotifyType::Http, PayloadFormat::Default) => d.event.harbor_payload(host),
        (NotifyType::Http, PayloadFormat::CloudEvents) => {
            d.event.cloud_event(&d.event_id, d.policy_id, host)
        }
    };
    body.to_string()
}

fn job_json(d: Delivery, attempts: Vec<Attempt>, host: &str) -> WebhookJob {
    WebhookJob {
        job_detail: rendered(&d, host),
        id: d.id,
        policy_id: d.policy_id,
        event_type: d.event_type.as_str().to_owned(),
        notify_type: d.notify_type.as_str().to_owned(),
        status: d.status.as_str().to_owned(),
        creation_time: d.created_at,
        update_time: d.updated_at,
        address: d.address,
        payload_format: d.payload_format.as_str().to_owned(),
        event_id: d.event_id,
        run_count: d.attempts,
        response_code: d.response_code,
        status_message: d.status_message,
        attempts: attempts.into_iter().map(WebhookAttempt::from).collect(),
    }
}

fn vendor_type(d: &Delivery) -> &'static str {
    match d.notify_type {
        NotifyType::Http => "WEBHOOK",
        NotifyType::Slack => "SLACK",
    }
}

fn execution_json(d: Delivery, host: &str) -> WebhookExecution {
    let mut metrics = ExecutionMetrics {
        task_count: 1,
        ..ExecutionMetrics::default()
    };
    match d.status {
        DeliveryStatus::Pending => metrics.pending_task_count = 1,
        DeliveryStatus::Running => metrics.running_task_count = 1,
        DeliveryStatus::Success => metrics.success_task_count = 1,
        DeliveryStatus::Error => metrics.error_task_count = 1,
        DeliveryStatus::Stopped => metrics.stopped_task_count = 1,
    }
    WebhookExecution {
        id: d.id,
        vendor_type: vendor_type(&d).to_owned(),
        vendor_id: d.policy_id,
        status: d.status.as_str().to_owned(),
        extra_attrs: json!({
            "event_type": d.event_type.as_str(),
            "payload": rendered(&d, host),
            "address": d.address,
        }),
        status_message: d.status_message,
        metrics,
        trigger: "EVENT".to_owned(),
        start_time: time_text(d.started_at.or(Some(d.created_at))),
        end_time: time_text(d.finished_at),
    }
}

fn task_json(d: Delivery) -> WebhookTask {
    WebhookTask {
        id: d.id,
        execution_id: d.id,
        status: d.status.as_str().to_owned(),
        status_message: d.status_message,
        run_count: d.attempts,
        extra_attrs: json!({}),
        creation_time: time_text(Some(d.created_at)),
        update_time: time_text(Some(d.updated_at)),
        start_time: time_text(d.started_at),
        end_time: time_text(d.finished_at),
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn policy_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("webhook policy {id} not found"))
}

/// The project and its policy `id`, once the caller may `action` policies.
async fn policy_in(
    req: &HttpRequest,
    pool: &PgPool,
    caller: &Caller,
    project: &str,
    id: i64,
    action: &str,
) -> ApiResult<(ProjectAccess, Policy)> {
    let access = project_access(req, pool, caller, project).await?;
    require(caller, &access, "notification-policy", action)?;
    match get_policy(pool, access.project.id, id).await {
        Ok(policy) => Ok((access, policy)),
        Err(Error::NotFound) => Err(policy_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

async fn audited(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    access: &ProjectAccess,
    operation: &str,
    policy: &Policy,
) -> ApiResult<()> {
    let description = format!(
        "{operation}d webhook policy {} in project {}",
        policy.name, access.project.name
    );
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: Some(access.project.id),
            username: caller.principal.audit_name(),
            operation,
            description: &description,
            success: true,
            resource_type: "webhook_policy",
            resource: &format!("{}/{}", access.project.name, policy.name),
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    Ok(())
}

const PROJECT_PARAM: &str = "Project name or id";

// ---------------------------------------------------------------------------
// Policies.

/// Query of `GET .../webhook/policies`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPoliciesParams {
    /// Harbor's query: `name` (exact, or `~` for contains), `enabled`.
    pub q: Option<String>,
    /// `id`, `name`, `creation_time`, `update_time`; `-` for descending.
    pub sort: Option<String>,
}

/// The project's webhook policies, newest first.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/policies", tag = "webhook",
    operation_id = "ListWebhookPoliciesOfProject",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        ListPoliciesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of policies; X-Total-Count and Link headers", body = [WebhookPolicy]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list the policies", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_policies_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    params: web::Query<ListPoliciesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "notification-policy", "list")?;
    let page = paging.page()?;
    let q = Query::parse(params.q.as_deref(), &["name", "enabled"])?;
    let (name, name_contains) = match q.get("name") {
        None => (None, None),
        Some(Matcher::Exact(v)) => (Some(v.clone()), None),
        Some(Matcher::Fuzzy(v)) => (None, Some(v.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key name takes an exact (name=x) or fuzzy (name=~x) value",
            ));
        }
    };
    let enabled = match q.get("enabled") {
        None => None,
        Some(Matcher::Exact(v)) if v == "true" || v == "1" => Some(true),
        Some(Matcher::Exact(v)) if v == "false" || v == "0" => Some(false),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key enabled must be exactly true or false",
            ));
        }
    };
    let sort = parse_sort(
        params.sort.as_deref(),
        &[
            ("id", PolicySort::Id),
            ("name", PolicySort::Name),
            ("creation_time", PolicySort::CreationTime),
            ("update_time", PolicySort::UpdateTime),
        ],
    )?;
    let mut conn = pool.acquire().await?;
    let listing = list_policies(
        &mut conn,
        &PolicyQuery {
            project_id: access.project.id,
            name,
            name_contains,
            enabled,
            sort,
            page,
        },
    )
    .await?;
    Ok(paginated(&req, listing, page, WebhookPolicy::from))
}

/// Add a policy; `Location` names it.
#[utoipa::path(
    post, path = "/projects/{project_name_or_id}/webhook/policies", tag = "webhook",
    operation_id = "CreateWebhookPolicyOfProject",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = WebhookPolicy,
    responses(
        (status = 201, description = "Created; Location is .../webhook/policies/{id}"),
        (status = 400, description = "No name, targets or event types, or an unusable one", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create policies", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
        (status = 409, description = "A policy of that name exists in the project", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_policy_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Json<WebhookPolicy>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "notification-policy", "create")?;
    let spec = spec_of(&body, true)?;
    let mut tx = pool.begin().await?;
    let policy = create_policy(
        &mut tx,
        access.project.id,
        caller.principal.audit_name(),
        &spec,
    )
    .await?;
    audited(&mut tx, &caller, &access, "create", &policy).await?;
    tx.commit().await?;
    Ok(created_at(&req, policy.id))
}

/// One policy.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
    tag = "webhook", operation_id = "GetWebhookPolicyOfProject",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The policy", body = WebhookPolicy),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project or policy", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_policy_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let (_, policy) = policy_in(&req, &pool, &caller, &project, id, "read").await?;
    Ok(HttpResponse::Ok().json(WebhookPolicy::from(policy)))
}

/// Replace a policy (all its fields but id, project, creator and times).
#[utoipa::path(
    put, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
    tag = "webhook", operation_id = "UpdateWebhookPolicyOfProject",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = WebhookPolicy,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad policy, or the body's id is another policy's", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update policies", body = ErrorsBody),
        (status = 404, description = "No such project or policy", body = ErrorsBody),
        (status = 409, description = "Another policy of the project has that name", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_policy_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
    body: web::Json<WebhookPolicy>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let (access, current) = policy_in(&req, &pool, &caller, &project, id, "update").await?;
    if body.id != 0 && body.id != id {
        return Err(ApiError::bad_request(
            "the webhook_policy_id doesn't match the id in the payload body of WebhookPolicy",
        ));
    }
    let spec = spec_of(&body, current.enabled)?;
    let mut tx = pool.begin().await?;
    let policy = match update_policy(&mut tx, access.project.id, id, &spec).await {
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        other => other?,
    };
    audited(&mut tx, &caller, &access, "update", &policy).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Remove a policy and its delivery log.
#[utoipa::path(
    delete, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
    tag = "webhook", operation_id = "DeleteWebhookPolicyOfProject",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete policies", body = ErrorsBody),
        (status = 404, description = "No such project or policy", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_policy_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "notification-policy", "delete")?;
    let mut tx = pool.begin().await?;
    let policy = match delete_policy(&mut tx, access.project.id, id).await {
        Err(Error::NotFound) => return Err(policy_not_found(id)),
        other => other?,
    };
    audited(&mut tx, &caller, &access, "delete", &policy).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

// ---------------------------------------------------------------------------
// Deliveries: executions, tasks, logs, jobs.

/// Query of the delivery listings.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Harbor's query: `status` (exact, or a union `{Success Error}`) and
    /// `event_type`.
    pub q: Option<String>,
    /// `id` or `creation_time`, `-` for descending (the default).
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum DeliverySort {
    Id,
}

fn statuses(values: &[String]) -> ApiResult<Vec<DeliveryStatus>> {
    values
        .iter()
        .map(|v| {
            DeliveryStatus::from_name(v.trim()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status {v:?}: use Pending, Running, Success, Error or Stopped"
                ))
            })
        })
        .collect()
}

fn delivery_query(
    policy_id: i64,
    params: &DeliveryParams,
    page: crate::Page,
) -> ApiResult<DeliveryQuery> {
    let q = Query::parse(params.q.as_deref(), &["status", "event_type"])?;
    let wanted = match q.get("status") {
        None => Vec::new(),
        Some(Matcher::Exact(v)) => statuses(std::slice::from_ref(v))?,
        Some(Matcher::Union(vs)) => statuses(vs)?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key status takes a value or a union ({Success Error})",
            ));
        }
    };
    let event_type = match q.get("event_type") {
        None => None,
        Some(Matcher::Exact(v)) => Some(
            EventType::parse(v)
                .ok_or_else(|| ApiError::bad_request(format!("unsupported event type {v}")))?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key event_type takes an exact value",
            ));
        }
    };
    let sort = parse_sort(
        params.sort.as_deref(),
        &[
            ("id", DeliverySort::Id),
            ("creation_time", DeliverySort::Id),
            ("start_time", DeliverySort::Id),
        ],
    )?;
    Ok(DeliveryQuery {
        policy_id,
        statuses: wanted,
        event_type,
        oldest_first: sort.first().is_some_and(|(DeliverySort::Id, desc)| !desc),
        page,
    })
}

/// The deliveries of a policy, newest first, as Harbor's executions.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions",
    tag = "webhook", operation_id = "ListExecutionsOfWebhookPolicy",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        DeliveryParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of executions; X-Total-Count and Link headers", body = [WebhookExecution]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project or policy", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_executions_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<(String, i64)>,
    params: web::Query<DeliveryParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    policy_in(&req, &pool, &caller, &project, id, "read").await?;
    let page = paging.page()?;
    let query = delivery_query(id, &params, page)?;
    let listing = list_deliveries(&pool, &query).await?;
    let host = shown_host(&req, &settings);
    Ok(paginated(&req, listing, page, |d| execution_json(d, &host)))
}

/// The delivery `execution_id` of the policy, or 404.
async fn delivery_of(pool: &PgPool, policy_id: i64, execution_id: i64) -> ApiResult<Delivery> {
    match get_delivery(pool, policy_id, execution_id).await {
        Ok(d) => Ok(d),
        Err(Error::NotFound) => Err(ApiError::not_found(format!(
            "execution {execution_id} not found in policy {policy_id}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The tasks of an execution: its one delivery.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks",
    tag = "webhook", operation_id = "ListTasksOfWebhookExecution",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("execution_id" = i64, Path, description = "Execution ID"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "The tasks; X-Total-Count and Link headers", body = [WebhookTask]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project, policy or execution", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_tasks_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64, i64)>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (project, id, execution_id) = path.into_inner();
    policy_in(&req, &pool, &caller, &project, id, "read").await?;
    let page = paging.page()?;
    let delivery = delivery_of(&pool, id, execution_id).await?;
    let items = if page.page == 1 {
        vec![delivery]
    } else {
        Vec::new()
    };
    let listing = crate::Listing { items, total: 1 };
    Ok(paginated(&req, listing, page, task_json))
}

/// A task's log: when it was queued and each attempt with its outcome.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks/{task_id}/log",
    tag = "webhook", operation_id = "GetLogsOfWebhookTask",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("webhook_policy_id" = i64, Path, description = "The policy's id"),
        ("execution_id" = i64, Path, description = "Execution ID"),
        ("task_id" = i64, Path, description = "Task ID"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project, policy, execution or task", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_task_log_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64, i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, id, execution_id, task_id) = path.into_inner();
    policy_in(&req, &pool, &caller, &project, id, "read").await?;
    delivery_of(&pool, id, execution_id).await?;
    if task_id != execution_id {
        return Err(ApiError::not_found(format!(
            "task {task_id} not found in execution {execution_id}"
        )));
    }
    let log = delivery_log(&pool, id, execution_id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(log))
}

/// For each policy and event type, when it last sent one (deprecated in
/// Harbor, kept for its UI).
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/lasttrigger", tag = "webhook",
    operation_id = "LastTrigger",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "One item per policy and event type", body = [WebhookLastTrigger]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn last_trigger_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "notification-policy", "read")?;
    let items: Vec<WebhookLastTrigger> = last_triggers(&pool, access.project.id)
        .await?
        .into_iter()
        .map(|t| WebhookLastTrigger {
            policy_name: t.policy_name,
            event_type: t.event_type.as_str().to_owned(),
            enabled: t.enabled,
            creation_time: t.creation_time,
            last_trigger_time: t.last_trigger_time,
        })
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

/// Query of `GET .../webhook/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// The policy whose jobs to list.
    pub policy_id: Option<i64>,
    /// Only jobs in these statuses, comma-separated (`Error,Pending`).
    pub status: Option<String>,
    /// Harbor's query: `status`, `event_type`.
    pub q: Option<String>,
    /// `id` or `creation_time`, `-` for descending (the default).
    pub sort: Option<String>,
}

/// A policy's jobs (deliveries) with each one's attempts, newest first:
/// the delivery log.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/jobs", tag = "webhookjob",
    operation_id = "ListWebhookJobs",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        JobsParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of jobs; X-Total-Count and Link headers", body = [WebhookJob]),
        (status = 400, description = "No policy_id, or a bad status or query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list policies", body = ErrorsBody),
        (status = 404, description = "No such project or policy", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_jobs_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<String>,
    params: web::Query<JobsParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let Some(policy_id) = params.policy_id else {
        return Err(ApiError::bad_request("policy_id is required"));
    };
    policy_in(&req, &pool, &caller, &path, policy_id, "list").await?;
    let page = paging.page()?;
    let mut query = delivery_query(
        policy_id,
        &DeliveryParams {
            q: params.q.clone(),
            sort: params.sort.clone(),
        },
        page,
    )?;
    if let Some(status) = params.status.as_deref().filter(|s| !s.trim().is_empty()) {
        let listed: Vec<String> = status.split(',').map(str::to_owned).collect();
        query.statuses.extend(statuses(&listed)?);
    }
    let listing = list_deliveries(&pool, &query).await?;
    let ids: Vec<i64> = listing.items.iter().map(|d| d.id).collect();
    let attempts: BTreeMap<i64, Vec<Attempt>> = attempts_of(pool.get_ref(), &ids).await?;
    let host = shown_host(&req, &settings);
    Ok(paginated(&req, listing, page, |d| {
        let tries = attempts.get(&d.id).cloned().unwrap_or_default();
        job_json(d, tries, &host)
    }))
}

/// The event types, notify types and payload formats policies may use.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/webhook/events", tag = "webhook",
    operation_id = "GetSupportedEventTypes",
    params(
        ("project_name_or_id" = String, Path, description = PROJECT_PARAM),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "What policies may use", body = SupportedWebhookEventTypes),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read policies", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn supported_event_types_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "notification-policy", "read")?;
    Ok(HttpResponse::Ok().json(supported()))
}

fn supported() -> SupportedWebhookEventTypes {
    SupportedWebhookEventTypes {
        event_type: EventType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        notify_type: NotifyType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        // Only HTTP targets choose a format, as in Harbor.
        payload_formats: vec![PayloadFormatJson {
            notify_type: NotifyType::Http.as_str().to_owned(),
            formats: PayloadFormat::ALL
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_part_has_harbors_operations() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let base = "/projects/{project_name_or_id}/webhook";
        let policy = format!("{base}/policies/{{webhook_policy_id}}");
        let expected = [
            (
                format!("{base}/policies"),
                "get",
                "ListWebhookPoliciesOfProject",
                "webhook",
            ),
            (
                format!("{base}/policies"),
                "post",
                "CreateWebhookPolicyOfProject",
                "webhook",
            ),
            (
                policy.clone(),
                "get",
                "GetWebhookPolicyOfProject",
                "webhook",
            ),
            (
                policy.clone(),
                "put",
                "UpdateWebhookPolicyOfProject",
                "webhook",
            ),
            (
                policy.clone(),
                "delete",
                "DeleteWebhookPolicyOfProject",
                "webhook",
            ),
            (
                format!("{policy}/executions"),
                "get",
                "ListExecutionsOfWebhookPolicy",
                "webhook",
            ),
            (
                format!("{policy}/executions/{{execution_id}}/tasks"),
                "get",
                "ListTasksOfWebhookExecution",
                "webhook",
            ),
            (
                format!("{policy}/executions/{{execution_id}}/tasks/{{task_id}}/log"),
                "get",
                "GetLogsOfWebhookTask",
                "webhook",
            ),
            (
                format!("{base}/lasttrigger"),
                "get",
                "LastTrigger",
                "webhook",
            ),
            (
                format!("{base}/jobs"),
                "get",
                "ListWebhookJobs",
                "webhookjob",
            ),
            (
                format!("{base}/events"),
                "get",
                "GetSupportedEventTypes",
                "webhook",
            ),
        ];
        for (path, method, id, tag) in expected {
            let op = &doc["paths"][&path][method];
            assert_eq!(op["operationId"], id, "{method} {path}");
            assert_eq!(op["tags"], json!([tag]), "{method} {path}");
        }
        for schema in [
            "WebhookPolicy",
            "WebhookTargetObject",
            "WebhookJob",
            "Execution",
            "Task",
            "WebhookLastTrigger",
            "SupportedWebhookEventTypes",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "{schema} missing"
            );
        }
    }

    #[test]
    fn supported_types_are_harbors() {
        let s = serde_json::to_value(supported()).unwrap();
        assert_eq!(s["notify_type"], json!(["http", "slack"]));
        assert_eq!(
            s["payload_formats"],
            json!([{"notify_type": "http", "formats": ["Default", "CloudEvents"]}])
        );
        let types = s["event_type"].as_array().unwrap();
        for t in [
            "PUSH_ARTIFACT",
            "PULL_ARTIFACT",
            "DELETE_ARTIFACT",
            "QUOTA_EXCEED",
            "QUOTA_WARNING",
            "REPLICATION",
            "TAG_RETENTION",
            "SCANNING_COMPLETED",
            "SCANNING_FAILED",
        ] {
            assert!(types.contains(&json!(t)), "{t}");
        }
    }
}
