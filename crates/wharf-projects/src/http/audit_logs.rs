//! The audit log: `/audit-logs` across projects, and one project's entries
//! at `/projects/{project_name}/logs` and `/projects/{project_name}/auditlog-exts`.
//!
//! System administrators (and robots granted the system `audit-log:list`)
//! read every entry, system ones included; anybody else signed in reads the
//! entries of the projects where they hold `log:list` (projectAdmin, or a
//! robot granted it). Anonymous callers read nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::ErrorsBody;
use super::{
    ApiError, ApiResult, Matcher, PageParams, Query, paginated, require, require_authenticated,
};
use crate::audit::{self, AuditLog, AuditQuery};
use crate::error::Error;
use crate::projects::get_project_by_name;
use crate::security::{Caller, ProjectAccess};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_audit_logs, project_logs, project_log_exts),
    components(schemas(AuditLogView, AuditLogExtView))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit-logs", web::get().to(list_audit_logs))
        .route("/projects/{project_name}/logs", web::get().to(project_logs))
        .route(
            "/projects/{project_name}/auditlog-exts",
            web::get().to(project_log_exts),
        );
}

/// An audit entry in Harbor's `AuditLog` shape.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditLog)]
pub struct AuditLogView {
    pub id: i64,
    /// Who: a username, a robot's login name, or `anonymous`.
    pub username: String,
    /// Which resource (`library/app:v1`, a project, user or robot name).
    pub resource: String,
    /// `artifact`, `project`, `user`, `member`, `robot`, ...
    pub resource_type: String,
    /// `create`, `update`, `delete`, `pull`, ...
    pub operation: String,
    pub op_time: DateTime<Utc>,
}

impl From<AuditLog> for AuditLogView {
    fn from(e: AuditLog) -> Self {
        AuditLogView {
            id: e.id,
            username: e.username,
            resource: e.resource,
            resource_type: e.resource_type,
            operation: e.operation,
            op_time: e.op_time,
        }
    }
}

/// An audit entry in Harbor's `AuditLogExt` shape: with what happened, in
/// words, and whether it succeeded.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditLogExt)]
pub struct AuditLogExtView {
    pub id: i64,
    pub username: String,
    pub resource: String,
    pub resource_type: String,
    pub operation: String,
    /// What happened, for people.
    pub operation_description: String,
    /// True when the operation succeeded.
    pub operation_result: bool,
    pub op_time: DateTime<Utc>,
}

impl From<AuditLog> for AuditLogExtView {
    fn from(e: AuditLog) -> Self {
        AuditLogExtView {
            id: e.id,
            username: e.username,
            resource: e.resource,
            resource_type: e.resource_type,
            operation: e.operation,
            operation_description: e.operation_description,
            operation_result: e.operation_result,
            op_time: e.op_time,
        }
    }
}

/// Query parameters of the audit-log listings.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Harbor's query over `username`, `resource`, `resource_type`,
    /// `operation` (exact `k=v` or fuzzy `k=~v`) and
    /// `op_time=[from~to]` (`2006-01-02 15:04:05` in UTC, or RFC 3339;
    /// either end may be empty).
    pub q: Option<String>,
    /// `op_time` (oldest first) or `-op_time` (newest first, the default).
    pub sort: Option<String>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1 to 100 (default 10).
    pub page_size: Option<i64>,
}

/// A time bound of `op_time`: Harbor's `2006-01-02 15:04:05` (UTC) or
/// RFC 3339, optionally quoted.
fn parse_time(raw: &str) -> ApiResult<DateTime<Utc>> {
    let text = raw.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(naive.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "op_time bound {text:?} is not a time: use \"2006-01-02 15:04:05\" or RFC 3339"
            ))
        })
}

/// The filter and page a request asks for (every project; the caller
/// narrows `project_ids`).
fn audit_query(req: &HttpRequest) -> ApiResult<AuditQuery> {
    let params = web::Query::<LogParams>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?
        .into_inner();
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .page()?;
    let mut query = AuditQuery {
        page,
        ..AuditQuery::default()
    };
    let q = Query::parse(
        params.q.as_deref(),
        &[
            "username",
            "resource",
            "resource_type",
            "operation",
            "op_time",
        ],
    )?;
    for (key, matcher) in &q.terms {
        let text_only = || {
            ApiError::bad_request(format!(
                "{key} takes an exact ({key}=v) or fuzzy ({key}=~v) value"
            ))
        };
        match (key.as_str(), matcher) {
            ("op_time", Matcher::Range(from, to)) => {
                query.since = from.as_deref().map(parse_time).transpose()?;
                query.until = to.as_deref().map(parse_time).transpose()?;
            }
            ("op_time", _) => {
                return Err(ApiError::bad_request(
                    "op_time takes a range: op_time=[2006-01-02 15:04:05~2006-01-03 00:00:00]",
                ));
            }
            ("username", Matcher::Exact(v)) => query.username = Some(v.clone()),
            ("username", Matcher::Fuzzy(v)) => query.username_contains = Some(v.clone()),
            ("resource", Matcher::Exact(v)) => query.resource = Some(v.clone()),
            ("resource", Matcher::Fuzzy(v)) => query.resource_contains = Some(v.clone()),
            ("resource_type", Matcher::Exact(v)) => query.resource_type = Some(v.clone()),
            ("resource_type", Matcher::Fuzzy(v)) => {
                query.resource_type_contains = Some(v.clone());
            }
            ("operation", Matcher::Exact(v)) => query.operation = Some(v.clone()),
            ("operation", Matcher::Fuzzy(v)) => query.operation_contains = Some(v.clone()),
            _ => return Err(text_only()),
        }
    }
    match params.sort.as_deref().map(str::trim) {
        None | Some("") | Some("-op_time") => {}
        Some("op_time") => query.oldest_first = true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "audit logs sort by op_time or -op_time, not {other:?}"
            )));
        }
    }
    Ok(query)
}

/// The project named `name` (always a name here, as in Harbor, even when
/// it is all digits) and what the caller may do in it; a project the
/// caller may not see is "not found".
async fn project_named(pool: &PgPool, caller: &Caller, name: &str) -> ApiResult<ProjectAccess> {
    let missing = || ApiError::not_found(format!("project {name} not found"));
    let project = match get_project_by_name(pool, name).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, &caller.principal, project).await?;
    if !access.can_see() {
        return Err(missing());
    }
    Ok(access)
}

/// Audit entries the caller may read, newest first.
#[utoipa::path(
    get,
    path = "/audit-logs",
    operation_id = "listAuditLogs",
    tag = "auditlog",
    params(LogParams),
    responses(
        (status = 200, description = "One page of audit entries", body = Vec<AuditLogView>,
         headers(("X-Total-Count" = i64, description = "How many entries match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
    )
)]
pub async fn list_audit_logs(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let mut query = audit_query(&req)?;
    query.project_ids = audit::readable_projects(&pool, &caller.principal).await?;
    let listing = audit::list(&pool, &query).await?;
    Ok(paginated(&req, listing, query.page, AuditLogView::from))
}

/// A project's audit entries, readable by whoever holds `log:list` in it.
async fn project_entries(
    req: &HttpRequest,
    caller: &Caller,
    pool: &PgPool,
    project_name: &str,
) -> ApiResult<(crate::Listing<AuditLog>, crate::Page)> {
    let access = project_named(pool, caller, project_name).await?;
    require(caller, &access, "log", "list")?;
    let mut query = audit_query(req)?;
    query.project_ids = Some(vec![access.project.id]);
    Ok((audit::list(pool, &query).await?, query.page))
}

/// A project's audit entries (Harbor's deprecated `getLogs`).
#[utoipa::path(
    get,
    path = "/projects/{project_name}/logs",
    operation_id = "getLogs",
    tag = "project",
    params(("project_name" = String, Path, description = "The project's name"), LogParams),
    responses(
        (status = 200, description = "One page of the project's audit entries", body = Vec<AuditLogView>,
         headers(("X-Total-Count" = i64, description = "How many entries match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read the project's log", body = ErrorsBody),
        (status = 404, description = "No such project", body = ErrorsBody),
    )
)]
pub async fn project_logs(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (listing, page) = project_entries(&req, &caller, &pool, &path).await?;
    Ok(paginated(&req, listing, page, AuditLogView::from))
}

/// A project's audit entries with descriptions and results.
#[utoipa::path(
    get,
    path = "/projects/{project_name}/auditlog-exts",
    operation_id = "getLogExts",
    tag = "project",
    params(("project_name" = String, Path, description = "The project's name"), LogParams),
    responses(
        (status = 200, description = "One page of the project's audit entries", body = Vec<AuditLogExtView>,
         headers(("X-Total-Count" = i64, description = "How many entries match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read the project's log", body = ErrorsBody),
        (status = 404, description = "No such project", body = ErrorsBody),
    )
)]
pub async fn project_log_exts(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (listing, page) = project_entries(&req, &caller, &pool, &path).await?;
    Ok(paginated(&req, listing, page, AuditLogExtView::from))
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn op_time_bounds_accept_harbor_and_rfc3339_times() {
        let harbor = parse_time("2024-05-06 07:08:09").unwrap();
        assert_eq!(harbor.to_rfc3339(), "2024-05-06T07:08:09+00:00");
        assert_eq!(parse_time("'2024-05-06 07:08:09'").unwrap(), harbor);
        assert_eq!(parse_time("2024-05-06T09:08:09+02:00").unwrap(), harbor);
        assert!(parse_time("yesterday").is_err());
    }
}
