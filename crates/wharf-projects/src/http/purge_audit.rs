//! Harbor's audit-log purge API (tag `purge`): `/system/purgeaudit` history,
//! one execution, its log, stopping it, and the purge schedule (POST with
//! type `Manual` runs a purge now).
//!
//! System administrators only, and robots granted the system `purge-audit`
//! resource. The job itself is [`crate::jobs::purge_audit`]; it runs on the
//! workers of `wharf_jobs`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::OpenApi;
use wharf_jobs::{EnqueueOptions, Trigger};

use super::error::{ErrorsBody, resource};
use super::schedules::{
    ExecHistory, HistoryParams, ScheduleBody, ScheduleObj, ScheduleRequest, apply_schedule,
    exec_history, execution_of_kind, jobs_error, list_history, schedule_history, schedule_request,
};
use super::{ApiError, ApiResult, require_system};
use crate::audit::{self, AuditEntry};
use crate::jobs::purge_audit::{KIND, PurgeParams, SCHEDULE_NAME, VENDOR_TYPE};
use crate::security::Caller;

/// The RBAC resource of these endpoints.
const RESOURCE: &str = "purge-audit";

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        get_purge_history,
        get_purge_job,
        stop_purge,
        get_purge_job_log,
        get_purge_schedule,
        create_purge_schedule,
        update_purge_schedule
    ),
    components(schemas(ExecHistory, ScheduleObj, ScheduleBody))
)]
pub struct Doc;

/// Mount this module's routes. `schedule` is registered before
/// `{purge_id}` so it is not read as an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/system/purgeaudit").route(web::get().to(get_purge_history)))
        .service(
            resource("/system/purgeaudit/schedule")
                .route(web::get().to(get_purge_schedule))
                .route(web::post().to(create_purge_schedule))
                .route(web::put().to(update_purge_schedule)),
        )
        .service(
            resource("/system/purgeaudit/{purge_id}")
                .route(web::get().to(get_purge_job))
                .route(web::put().to(stop_purge)),
        )
        .service(
            resource("/system/purgeaudit/{purge_id}/log").route(web::get().to(get_purge_job_log)),
        );
}

/// Query parameters of the history.
fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("purge job with id {id} not found"))
}

async fn purge_execution(pool: &PgPool, id: i64) -> ApiResult<wharf_jobs::Execution> {
    execution_of_kind(pool, id, KIND)
        .await?
        .ok_or_else(|| not_found(id))
}

/// The purge executions, newest first.
#[utoipa::path(
    get,
    path = "/system/purgeaudit",
    operation_id = "getPurgeHistory",
    tag = "purge",
    params(HistoryParams),
    responses(
        (status = 200, description = "One page of purge executions", body = Vec<ExecHistory>,
         headers(("X-Total-Count" = i64, description = "How many executions match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query, sort or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn get_purge_history(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<HistoryParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "list")?;
    list_history(&req, &pool, &params, KIND, VENDOR_TYPE).await
}

/// One purge execution.
#[utoipa::path(
    get,
    path = "/system/purgeaudit/{purge_id}",
    operation_id = "getPurgeJob",
    tag = "purge",
    params(("purge_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution", body = ExecHistory),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such purge execution", body = ErrorsBody),
    )
)]
pub async fn get_purge_job(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let execution = purge_execution(&pool, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(exec_history(VENDOR_TYPE, &execution)))
}

/// Stop a purge execution (a waiting one at once, a running one between
/// batches). Stopping a finished one changes nothing.
#[utoipa::path(
    put,
    path = "/system/purgeaudit/{purge_id}",
    operation_id = "stopPurge",
    tag = "purge",
    params(("purge_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Stop requested"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such purge execution", body = ErrorsBody),
    )
)]
pub async fn stop_purge(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "stop")?;
    let id = path.into_inner();
    purge_execution(&pool, id).await?;
    let mut tx = pool.begin().await?;
    if wharf_jobs::request_stop(&mut *tx, id)
        .await
        .map_err(jobs_error)?
    {
        record(
            &mut tx,
            &caller,
            "update",
            &format!("stopped purge execution {id}"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// A purge execution's log, as plain text.
#[utoipa::path(
    get,
    path = "/system/purgeaudit/{purge_id}/log",
    operation_id = "getPurgeJobLog",
    tag = "purge",
    params(("purge_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such purge execution", body = ErrorsBody),
    )
)]
pub async fn get_purge_job_log(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let id = path.into_inner();
    purge_execution(&pool, id).await?;
    let log = wharf_jobs::get_log(pool.get_ref(), id)
        .await
        .map_err(jobs_error)?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(log))
}

/// The purge schedule. Like Harbor, an empty 200 when there is none.
#[utoipa::path(
    get,
    path = "/system/purgeaudit/schedule",
    operation_id = "getPurgeSchedule",
    tag = "purge",
    responses(
        (status = 200, description = "The schedule (empty body when there is none)", body = ExecHistory),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn get_purge_schedule(
    caller: Caller,
    pool: web::Data<PgPool>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    match wharf_jobs::get_schedule(pool.get_ref(), SCHEDULE_NAME)
        .await
        .map_err(jobs_error)?
    {
        Some(schedule) => Ok(HttpResponse::Ok().json(schedule_history(&schedule))),
        None => Ok(HttpResponse::Ok().finish()),
    }
}

/// Set the purge schedule, remove it (`None`) or run a purge now
/// (`Manual`: 201 with the new execution's `Location`).
#[utoipa::path(
    post,
    path = "/system/purgeaudit/schedule",
    operation_id = "createPurgeSchedule",
    tag = "purge",
    request_body(content = ScheduleBody, description = "E.g. {\"parameters\":{\"audit_retention_hour\":168,\"dry_run\":true,\"include_operations\":\"create,delete,pull\"},\"schedule\":{\"type\":\"Hourly\"}}"),
    responses(
        (status = 201, description = "Done; for Manual, Location names the execution",
         headers(("Location" = String, description = "/api/v2.0/system/purgeaudit/{id} (Manual only)"))),
        (status = 400, description = "Missing or invalid schedule or parameters", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn create_purge_schedule(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<ScheduleBody>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "create")?;
    match kick(&caller, &pool, body.into_inner()).await? {
        Some(id) => {
            let base = req.path().trim_end_matches('/');
            let base = base.strip_suffix("/schedule").unwrap_or(base);
            Ok(HttpResponse::Created()
                .insert_header((actix_web::http::header::LOCATION, format!("{base}/{id}")))
                .finish())
        }
        None => Ok(HttpResponse::Created().finish()),
    }
}

/// Same as POST, answering 200.
#[utoipa::path(
    put,
    path = "/system/purgeaudit/schedule",
    operation_id = "updatePurgeSchedule",
    tag = "purge",
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "Done"),
        (status = 400, description = "Missing or invalid schedule or parameters", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn update_purge_schedule(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<ScheduleBody>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "update")?;
    kick(&caller, &pool, body.into_inner()).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Carry out a schedule request; the id of the execution a `Manual` run
/// created.
async fn kick(caller: &Caller, pool: &PgPool, body: ScheduleBody) -> ApiResult<Option<i64>> {
    let request = schedule_request(body.schedule.as_ref())?;
    let parameters = body.parameters.unwrap_or_default();
    // Harbor checks the parameters even when removing the schedule.
    if parameters.is_empty() {
        return Err(ApiError::bad_request("schedule parameter can't be empty"));
    }
    PurgeParams::from_parameters(&parameters).map_err(ApiError::bad_request)?;
    let parameters = Value::Object(parameters);

    let mut tx = pool.begin().await?;
    let created = match &request {
        ScheduleRequest::RunNow => {
            let id = wharf_jobs::create_execution(
                &mut *tx,
                KIND,
                Trigger::Manual,
                parameters.clone(),
                None,
            )
            .await
            .map_err(jobs_error)?;
            wharf_jobs::enqueue(
                &mut tx,
                KIND,
                wharf_jobs::with_execution(parameters, id),
                EnqueueOptions::default(),
            )
            .await
            .map_err(jobs_error)?;
            record(
                &mut tx,
                caller,
                "create",
                &format!("started purge execution {id}"),
            )
            .await?;
            Some(id)
        }
        ScheduleRequest::Remove => {
            apply_schedule(&mut tx, SCHEDULE_NAME, KIND, &request, parameters).await?;
            record(
                &mut tx,
                caller,
                "delete",
                "removed the audit log purge schedule",
            )
            .await?;
            None
        }
        ScheduleRequest::Cron(cron) => {
            apply_schedule(&mut tx, SCHEDULE_NAME, KIND, &request, parameters).await?;
            record(
                &mut tx,
                caller,
                "update",
                &format!("scheduled the audit log purge at {cron:?}"),
            )
            .await?;
            None
        }
    };
    tx.commit().await?;
    Ok(created)
}

/// The audit entry of a change to the purge (in the change's transaction).
async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    operation: &str,
    description: &str,
) -> ApiResult<()> {
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: None,
            username: caller.principal.audit_name(),
            operation,
            description,
            success: true,
            resource_type: "purge_audit",
            resource: SCHEDULE_NAME,
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_part_has_harbors_operations() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let expected = [
            ("/system/purgeaudit", "get", "getPurgeHistory"),
            ("/system/purgeaudit/{purge_id}", "get", "getPurgeJob"),
            ("/system/purgeaudit/{purge_id}", "put", "stopPurge"),
            ("/system/purgeaudit/{purge_id}/log", "get", "getPurgeJobLog"),
            ("/system/purgeaudit/schedule", "get", "getPurgeSchedule"),
            ("/system/purgeaudit/schedule", "post", "createPurgeSchedule"),
            ("/system/purgeaudit/schedule", "put", "updatePurgeSchedule"),
        ];
        for (path, method, id) in expected {
            let op = &doc["paths"][path][method];
            assert_eq!(op["operationId"], id, "{method} {path}");
            assert_eq!(op["tags"], serde_json::json!(["purge"]), "{method} {path}");
            if path.contains("{purge_id}") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "purge_id" && p["in"] == "path"),
                    "{method} {path}: purge_id not declared"
                );
            }
        }
        // Tags are declared once, on the document's root (system.rs).
        let root = serde_json::to_value(super::super::openapi()).unwrap();
        assert!(
            root["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "purge")
        );
        for schema in ["ExecHistory", "ScheduleObj", "Schedule"] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "{schema} missing"
            );
        }
    }
}
