//! Harbor's JSON shapes for schedules and execution histories, shared by
//! every endpoint that runs background jobs (`/system/gc`,
//! `/system/purgeaudit`, retention, ...), and the helpers that turn
//! `wharf_jobs` rows into them and requests into schedule changes.
//!
//! Harbor's history item (`ExecHistory`, and `GCHistory` which has the same
//! fields) describes an execution as `job_name` = the vendor type
//! (`PURGE_AUDIT_LOG`, `GARBAGE_COLLECTION`), `job_kind` = the trigger
//! (`MANUAL`, `SCHEDULE`, `EVENT`), `job_parameters` = the parameters as a
//! JSON *string*, `schedule.type` = the trigger again. The schedule itself
//! (GET `.../schedule`) is the same item with `job_kind` = the cron and
//! `schedule` = {type, cron, next_scheduled_time}.

use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use wharf_jobs::{Execution, ExecutionQuery, ExecutionStatus, Schedule, ScheduleType, Trigger};

use super::error::{ApiError, ApiResult};
use super::{PageParams, Query, paginated};
use crate::{Listing, Page};

/// Harbor's `ScheduleObj`: when a job runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ScheduleObj)]
pub struct ScheduleObj {
    /// `Hourly`, `Daily`, `Weekly`, `Custom`, `Manual` (run now), `None`
    /// (no schedule) or `Schedule` (the cron given). In a history item: the
    /// trigger (`MANUAL`, `SCHEDULE`, `EVENT`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Six-field cron: second minute hour day-of-month month day-of-week
    /// (0 = Sunday), in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The next time it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<DateTime<Utc>>,
}

/// Harbor's `Schedule`: the body of POST/PUT `.../schedule`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleBody {
    /// When to run.
    #[serde(default)]
    pub schedule: Option<ScheduleObj>,
    /// The job's parameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
}

/// Harbor's `ExecHistory` (and `GCHistory`): one execution of a job, or a
/// job's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ExecHistory)]
pub struct ExecHistory {
    /// The execution's (or schedule's) id.
    pub id: i64,
    /// The vendor type (`PURGE_AUDIT_LOG`, `GARBAGE_COLLECTION`); empty for
    /// a schedule.
    pub job_name: String,
    /// What started it (`MANUAL`, `SCHEDULE`, `EVENT`); the cron for a
    /// schedule.
    pub job_kind: String,
    /// The parameters, as a JSON string.
    pub job_parameters: String,
    /// The trigger (for an execution) or the schedule.
    pub schedule: Option<ScheduleObj>,
    /// `Pending`, `Running`, `Stopping`, `Stopped`, `Error` or `Success`.
    pub job_status: String,
    /// Always false (kept for Harbor's shape).
    pub deleted: bool,
    /// When it was created.
    pub creation_time: DateTime<Utc>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
}

/// Harbor's spelling of a trigger in histories.
pub fn trigger_name(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Manual => "MANUAL",
        Trigger::Schedule => "SCHEDULE",
        Trigger::Event => "EVENT",
    }
}

/// Parameters as Harbor shows them: the JSON object as a string, without
/// Wharf's bookkeeping (`execution_id`).
pub fn parameters_string(parameters: &Value) -> String {
    let mut parameters = parameters.clone();
    if let Value::Object(map) = &mut parameters {
        map.remove(wharf_jobs::EXECUTION_ID_KEY);
    }
    if parameters.is_null() {
        return "{}".into();
    }
    serde_json::to_string(&parameters).unwrap_or_else(|_| "{}".into())
}

/// An execution as a Harbor history item of `job_name` (the vendor type).
pub fn exec_history(job_name: &str, execution: &Execution) -> ExecHistory {
    let trigger = trigger_name(execution.trigger);
    ExecHistory {
        id: execution.id,
        job_name: job_name.to_owned(),
        job_kind: trigger.to_owned(),
        job_parameters: parameters_string(&execution.parameters),
        schedule: Some(ScheduleObj {
            kind: Some(trigger.to_owned()),
            cron: None,
            next_scheduled_time: None,
        }),
        job_status: execution.status.as_str().to_owned(),
        deleted: false,
        creation_time: execution.created_at,
        update_time: execution.updated_at,
    }
}

/// A schedule's [`ScheduleObj`] (its type read back from the cron).
pub fn schedule_obj(schedule: &Schedule) -> ScheduleObj {
    ScheduleObj {
        kind: Some(schedule.schedule_type().as_str().to_owned()),
        cron: Some(schedule.cron.clone()),
        next_scheduled_time: Some(schedule.next_run_at),
    }
}

/// A schedule as Harbor's GET `.../schedule` answers it.
pub fn schedule_history(schedule: &Schedule) -> ExecHistory {
    ExecHistory {
        id: schedule.id,
        job_name: String::new(),
        job_kind: schedule.cron.clone(),
        job_parameters: parameters_string(&schedule.payload),
        schedule: Some(schedule_obj(schedule)),
        job_status: String::new(),
        deleted: false,
        creation_time: schedule.created_at,
        update_time: schedule.updated_at,
    }
}

/// What a POST/PUT `.../schedule` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleRequest {
    /// Run once, now (`Manual`).
    RunNow,
    /// Remove the schedule (`None`).
    Remove,
    /// Run on this (validated) cron.
    Cron(String),
}

/// Read the `schedule` of a request body: a 400 saying what is wrong for a
/// missing object, an unknown type, or a missing or invalid cron.
pub fn schedule_request(schedule: Option<&ScheduleObj>) -> ApiResult<ScheduleRequest> {
    let Some(schedule) = schedule else {
        return Err(ApiError::bad_request("schedule can't be empty"));
    };
    let kind = ScheduleType::parse(schedule.kind.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match kind {
        ScheduleType::Manual => Ok(ScheduleRequest::RunNow),
        ScheduleType::None => Ok(ScheduleRequest::Remove),
        _ => match wharf_jobs::cron_for(kind, schedule.cron.as_deref()) {
            Ok(Some(cron)) => Ok(ScheduleRequest::Cron(cron)),
            Ok(None) => Ok(ScheduleRequest::Remove),
            Err(e) => Err(ApiError::bad_request(e.to_string())),
        },
    }
}

/// Apply a non-`RunNow` request to the schedule `name` (set it to run `kind`
/// with `payload`, or remove it). Returns whether anything was set.
pub async fn apply_schedule(
    conn: &mut PgConnection,
    name: &str,
    kind: &str,
    request: &ScheduleRequest,
    payload: Value,
) -> ApiResult<()> {
    match request {
        ScheduleRequest::Cron(cron) => {
            wharf_jobs::set_schedule(conn, name, kind, cron, payload)
                .await
                .map_err(jobs_error)?;
        }
        ScheduleRequest::Remove => {
            wharf_jobs::delete_schedule(&mut *conn, name)
                .await
                .map_err(jobs_error)?;
        }
        ScheduleRequest::RunNow => {}
    }
    Ok(())
}

/// A job-system error as an API error: bad crons and schedules are the
/// caller's 400, a missing execution a 404, the rest a logged 500.
pub fn jobs_error(e: wharf_jobs::JobsError) -> ApiError {
    use wharf_jobs::JobsError;
    match e {
        JobsError::InvalidCron { .. } | JobsError::InvalidSchedule(_) => {
            ApiError::bad_request(e.to_string())
        }
        JobsError::ExecutionNotFound(id) => {
            ApiError::not_found(format!("execution {id} not found"))
        }
        JobsError::Database(cause) => ApiError::from(cause),
        JobsError::Queue(cause) => {
            tracing::error!(error = %cause, "job queue error in the API");
            ApiError::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wharf_jobs::ExecutionStatus;

    fn obj(kind: &str, cron: Option<&str>) -> ScheduleObj {
        ScheduleObj {
            kind: Some(kind.into()),
            cron: cron.map(Into::into),
            next_scheduled_time: None,
        }
    }

    #[test]
    fn schedule_requests_follow_harbor_types() {
        assert_eq!(
            schedule_request(Some(&obj("Hourly", None))).unwrap(),
            ScheduleRequest::Cron("0 0 * * * *".into())
        );
        assert_eq!(
            schedule_request(Some(&obj("Weekly", Some("1 2 3 * * *")))).unwrap(),
            ScheduleRequest::Cron("0 0 0 * * 0".into())
        );
        assert_eq!(
            schedule_request(Some(&obj("Custom", Some("0 */5 * * * *")))).unwrap(),
            ScheduleRequest::Cron("0 */5 * * * *".into())
        );
        assert_eq!(
            schedule_request(Some(&obj("Schedule", Some("0 1 * * * *")))).unwrap(),
            ScheduleRequest::Cron("0 1 * * * *".into())
        );
        assert_eq!(
            schedule_request(Some(&obj("Manual", None))).unwrap(),
            ScheduleRequest::RunNow
        );
        assert_eq!(
            schedule_request(Some(&obj("None", None))).unwrap(),
            ScheduleRequest::Remove
        );
        let bad = schedule_request(Some(&obj("Custom", Some("0 0 * * *")))).unwrap_err();
        assert_eq!(bad.status.as_u16(), 400);
        assert!(bad.message.contains("expected 6 fields"), "{}", bad.message);
        assert_eq!(schedule_request(None).unwrap_err().status.as_u16(), 400);
        assert_eq!(
            schedule_request(Some(&obj("Monthly", None)))
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }

    #[test]
    fn an_execution_reads_as_harbor_history() {
        let at = Utc::now();
        let e = Execution {
            id: 7,
            kind: "purge_audit".into(),
            trigger: Trigger::Schedule,
            status: ExecutionStatus::Success,
            parameters: json!({"dry_run": true, "execution_id": 7}),
            result: None,
            project_id: None,
            created_at: at,
            started_at: None,
            finished_at: None,
            updated_at: at,
        };
        let h = serde_json::to_value(exec_history("PURGE_AUDIT_LOG", &e)).unwrap();
        assert_eq!(h["id"], 7);
        assert_eq!(h["job_name"], "PURGE_AUDIT_LOG");
        assert_eq!(h["job_kind"], "SCHEDULE");
        assert_eq!(h["job_parameters"], r#"{"dry_run":true}"#);
        assert_eq!(h["schedule"], json!({"type": "SCHEDULE"}));
        assert_eq!(h["job_status"], "Success");
        assert_eq!(h["deleted"], false);
        assert!(h["creation_time"].is_string() && h["update_time"].is_string());
    }
}

/// The query of a history listing (`GET /system/gc`, `/system/purgeaudit`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Harbor's query; supports `status` (exact).
    pub q: Option<String>,
    /// `creation_time` or `id` (oldest first), `-creation_time` or `-id`
    /// (newest first, the default).
    pub sort: Option<String>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1–100 (default 10).
    pub page_size: Option<i64>,
}

/// One page of the executions of job `kind`, as Harbor's history items
/// named `vendor_type`: Harbor's `q` (`status`), `sort` and paging.
pub async fn list_history(
    req: &HttpRequest,
    pool: &PgPool,
    params: &HistoryParams,
    kind: &'static str,
    vendor_type: &str,
) -> ApiResult<HttpResponse> {
    let page: Page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .page()?;
    let q = Query::parse(params.q.as_deref(), &["status"])?;
    let mut query = ExecutionQuery::new(kind);
    query.page = page.page;
    query.page_size = page.page_size;
    if let Some(m) = q.get("status") {
        let text = m
            .text()
            .ok_or_else(|| ApiError::bad_request("status takes one value"))?;
        query.status = Some(
            ExecutionStatus::from_name(text)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {text:?}")))?,
        );
    }
    query.oldest_first = match params.sort.as_deref().map(str::trim) {
        None | Some("") | Some("-creation_time") | Some("-id") | Some("-update_time") => false,
        Some("creation_time") | Some("id") | Some("update_time") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "cannot sort by {other:?} (use creation_time or id, with - for newest first)"
            )));
        }
    };
    let (items, total) = wharf_jobs::list_executions(pool, &query)
        .await
        .map_err(jobs_error)?;
    Ok(paginated(req, Listing { items, total }, page, |e| {
        exec_history(vendor_type, &e)
    }))
}

/// The execution `id` if it is one of job `kind` (another kind's id is as
/// good as unknown to the endpoint asking).
pub async fn execution_of_kind(pool: &PgPool, id: i64, kind: &str) -> ApiResult<Option<Execution>> {
    Ok(wharf_jobs::get_execution(pool, id)
        .await
        .map_err(jobs_error)?
        .filter(|e| e.kind == kind))
}
