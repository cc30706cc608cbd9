//! Harbor's garbage collection API (tag `gc`): `/system/gc` history, one
//! execution, its log, stopping it, and the GC schedule (POST with type
//! `Manual` runs a collection now with `dry_run`, `delete_untagged` and
//! `workers`; `Hourly`/`Daily`/`Weekly`/`Custom` set a cron; `None` removes
//! it).
//!
//! System administrators only, and robots granted the system
//! `garbage-collection` resource. Each run is an execution of the job
//! [`crate::jobs::gc`], carried out by the workers of `wharf_jobs`.

use actix_web::{HttpRequest, HttpResponse, web};
use sqlx::PgPool;
use utoipa::OpenApi;

use super::error::{ErrorsBody, resource};
use super::schedules::{
    ExecHistory, HistoryParams, ScheduleBody, ScheduleObj, ScheduleRequest, exec_history,
    execution_of_kind, jobs_error, list_history, schedule_history, schedule_request,
};
use super::{ApiError, ApiResult, require_system};
use crate::error::Error;
use crate::jobs::gc::{
    GcActor, GcChange, GcParams, KIND, SCHEDULE_NAME, VENDOR_TYPE, change_gc,
    stop_gc as stop_gc_run,
};
use crate::security::Caller;

/// The RBAC resource of these endpoints.
const RESOURCE: &str = "garbage-collection";

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        get_gc_history,
        get_gc,
        stop_gc,
        get_gc_log,
        get_gc_schedule,
        create_gc_schedule,
        update_gc_schedule
    ),
    components(schemas(ExecHistory, ScheduleObj, ScheduleBody))
)]
pub struct Doc;

/// Mount this module's routes. `schedule` is registered before `{gc_id}`
/// so it is not read as an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/system/gc").route(web::get().to(get_gc_history)))
        .service(
            resource("/system/gc/schedule")
                .route(web::get().to(get_gc_schedule))
                .route(web::post().to(create_gc_schedule))
                .route(web::put().to(update_gc_schedule)),
        )
        .service(
            resource("/system/gc/{gc_id}")
                .route(web::get().to(get_gc))
                .route(web::put().to(stop_gc)),
        )
        .service(resource("/system/gc/{gc_id}/log").route(web::get().to(get_gc_log)));
}

/// Query parameters of the history.
fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("garbage collection {id} not found"))
}

async fn gc_execution(pool: &PgPool, id: i64) -> ApiResult<wharf_jobs::Execution> {
    execution_of_kind(pool, id, KIND)
        .await?
        .ok_or_else(|| not_found(id))
}

/// The garbage collections, newest first.
#[utoipa::path(
    get,
    path = "/system/gc",
    operation_id = "getGCHistory",
    tag = "gc",
    params(HistoryParams),
    responses(
        (status = 200, description = "One page of garbage collections", body = Vec<ExecHistory>,
         headers(("X-Total-Count" = i64, description = "How many executions match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query, sort or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn get_gc_history(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<HistoryParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "list")?;
    list_history(&req, &pool, &params, KIND, VENDOR_TYPE).await
}

/// One garbage collection.
#[utoipa::path(
    get,
    path = "/system/gc/{gc_id}",
    operation_id = "getGC",
    tag = "gc",
    params(("gc_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution", body = ExecHistory),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such garbage collection", body = ErrorsBody),
    )
)]
pub async fn get_gc(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let execution = gc_execution(&pool, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(exec_history(VENDOR_TYPE, &execution)))
}

/// Stop a garbage collection (a waiting one at once, a running one after
/// its current batch). Stopping a finished one changes nothing.
#[utoipa::path(
    put,
    path = "/system/gc/{gc_id}",
    operation_id = "stopGC",
    tag = "gc",
    params(("gc_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Stop requested"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such garbage collection", body = ErrorsBody),
    )
)]
pub async fn stop_gc(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "stop")?;
    let id = path.into_inner();
    match stop_gc_run(&pool, actor(&caller), id).await {
        Ok(_) => Ok(HttpResponse::Ok().finish()),
        Err(Error::NotFound) => Err(not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// A garbage collection's log, as plain text: each step, what it deleted
/// (blobs, bytes freed, untagged artifacts) and the final summary.
#[utoipa::path(
    get,
    path = "/system/gc/{gc_id}/log",
    operation_id = "getGCLog",
    tag = "gc",
    params(("gc_id" = i64, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The log", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such garbage collection", body = ErrorsBody),
    )
)]
pub async fn get_gc_log(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let id = path.into_inner();
    gc_execution(&pool, id).await?;
    let log = wharf_jobs::get_log(pool.get_ref(), id)
        .await
        .map_err(jobs_error)?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(log))
}

/// The GC schedule. Like Harbor, an empty 200 when there is none.
#[utoipa::path(
    get,
    path = "/system/gc/schedule",
    operation_id = "getGCSchedule",
    tag = "gc",
    responses(
        (status = 200, description = "The schedule (empty body when there is none)", body = ExecHistory),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn get_gc_schedule(caller: Caller, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    match wharf_jobs::get_schedule(pool.get_ref(), SCHEDULE_NAME)
        .await
        .map_err(jobs_error)?
    {
        Some(schedule) => Ok(HttpResponse::Ok().json(schedule_history(&schedule))),
        None => Ok(HttpResponse::Ok().finish()),
    }
}

/// Set the GC schedule, remove it (`None`) or run a collection now
/// (`Manual`: 201 with the new execution's `Location`; 409 while another
/// is waiting or running).
#[utoipa::path(
    post,
    path = "/system/gc/schedule",
    operation_id = "createGCSchedule",
    tag = "gc",
    request_body(content = ScheduleBody, description = "E.g. {\"schedule\":{\"type\":\"Manual\"},\"parameters\":{\"delete_untagged\":true,\"workers\":3,\"dry_run\":false}}"),
    responses(
        (status = 201, description = "Done; for Manual, Location names the execution",
         headers(("Location" = String, description = "/api/v2.0/system/gc/{id} (Manual only)"))),
        (status = 400, description = "Missing or invalid schedule or parameters", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 409, description = "A garbage collection is already waiting or running", body = ErrorsBody),
    )
)]
pub async fn create_gc_schedule(
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
    path = "/system/gc/schedule",
    operation_id = "updateGCSchedule",
    tag = "gc",
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "Done"),
        (status = 400, description = "Missing or invalid schedule or parameters", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 409, description = "A garbage collection is already waiting or running", body = ErrorsBody),
    )
)]
pub async fn update_gc_schedule(
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<ScheduleBody>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "update")?;
    kick(&caller, &pool, body.into_inner()).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Carry out a schedule request through [`change_gc`]; the id of the
/// execution a `Manual` run created.
async fn kick(caller: &Caller, pool: &PgPool, body: ScheduleBody) -> ApiResult<Option<i64>> {
    let change = match schedule_request(body.schedule.as_ref())? {
        ScheduleRequest::RunNow => GcChange::RunNow,
        ScheduleRequest::Remove => GcChange::Unschedule,
        ScheduleRequest::Cron(cron) => GcChange::Schedule(cron),
    };
    let params = GcParams::from_parameters(&body.parameters.unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    Ok(change_gc(pool, actor(caller), &change, params).await?)
}

/// Who the audit log names for a change.
fn actor(caller: &Caller) -> GcActor<'_> {
    GcActor {
        username: caller.principal.audit_name(),
        client_addr: caller.client_addr.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_part_has_harbors_operations() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let expected = [
            ("/system/gc", "get", "getGCHistory"),
            ("/system/gc/{gc_id}", "get", "getGC"),
            ("/system/gc/{gc_id}", "put", "stopGC"),
            ("/system/gc/{gc_id}/log", "get", "getGCLog"),
            ("/system/gc/schedule", "get", "getGCSchedule"),
            ("/system/gc/schedule", "post", "createGCSchedule"),
            ("/system/gc/schedule", "put", "updateGCSchedule"),
        ];
        for (path, method, id) in expected {
            let op = &doc["paths"][path][method];
            assert_eq!(op["operationId"], id, "{method} {path}");
            assert_eq!(op["tags"], serde_json::json!(["gc"]), "{method} {path}");
            if path.contains("{gc_id}") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "gc_id" && p["in"] == "path"),
                    "{method} {path}: gc_id not declared"
                );
            }
        }
    }
}
