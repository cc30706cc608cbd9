//! The Harbor-compatible REST API (`/api/v2.0`) over this crate's domain.
//!
//! Handlers are thin: parse and validate the request, ask [`Caller`] and
//! [`crate::ProjectAccess`] whether it is allowed, call the domain function,
//! shape the answer as Harbor does. Who the caller is was decided before the
//! handler runs, by the identification middleware of `wharf-auth`, which
//! leaves a [`Caller`] in the request extensions; a request it did not see
//! is anonymous, so a missing middleware denies rather than allows.
//!
//! Mount with [`configure`] inside the `/api/v2.0` scope.

mod artifacts;
mod audit_logs;
pub mod error;
mod gc;
mod immutable;
mod labels;
mod members;
pub mod paging;
mod projects;
mod purge_audit;
pub mod query;
mod quotas;
mod registries;
mod replication;
mod repositories;
mod retention;
mod robots;
pub mod schedules;
mod search;
mod statistics;
mod system;
mod users;
mod webhooks;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use sqlx::PgPool;
use std::future::{Ready, ready};

pub use error::{ApiError, ApiResult};
pub use paging::{PageParams, paginated};
pub use query::{Matcher, Query};

use crate::error::Error;
use crate::projects::{get_project, get_project_by_name};
use crate::security::{Caller, ProjectAccess};

/// The `Location` of a resource just created under the request's path.
pub(crate) fn created_at(req: &HttpRequest, id: impl std::fmt::Display) -> HttpResponse {
    let location = format!("{}/{id}", req.path().trim_end_matches('/'));
    HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// Facts about this installation the API reports (`/systeminfo`) and needs
/// (absolute links), provided by the gateway as app data.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The URL clients reach Wharf at, if configured (`external_url`).
    pub external_url: Option<String>,
    /// Wharf's version, reported as `harbor_version`.
    pub version: String,
    /// The blob store backend (`filesystem`, `s3`, `memory`).
    pub storage_provider: String,
    /// The login-name prefix of robot accounts (`robot$`).
    pub robot_prefix: String,
    /// The storage limit in bytes of a project created without one (or by
    /// someone who may not choose it); -1 is unlimited (Harbor's
    /// `storage_per_project`).
    pub default_storage_limit: i64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            external_url: None,
            version: String::new(),
            storage_provider: String::new(),
            robot_prefix: String::new(),
            default_storage_limit: crate::quotas::UNLIMITED,
        }
    }
}

/// Mount every API route (paths relative to the `/api/v2.0` scope). Needs
/// `web::Data<PgPool>` and `web::Data<ApiSettings>` in the app data, and
/// `web::Data<wharf_replication::registries::Registries>` for the
/// registries and replication routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    users::configure(cfg);
    projects::configure(cfg);
    members::configure(cfg);
    robots::configure(cfg);
    purge_audit::configure(cfg);
    gc::configure(cfg);
    audit_logs::configure(cfg);
    system::configure(cfg);
    repositories::configure(cfg);
    retention::configure(cfg);
    artifacts::configure(cfg);
    quotas::configure(cfg);
    immutable::configure(cfg);
    labels::configure(cfg);
    search::configure(cfg);
    statistics::configure(cfg);
    webhooks::configure(cfg);
    registries::configure(cfg);
    replication::configure(cfg);
}

/// The OpenAPI document of every route [`configure`] mounts (paths relative
/// to `/api/v2.0`, which is the document's server URL).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = system::Doc::openapi();
    for part in [
        users::Doc::openapi(),
        projects::Doc::openapi(),
        members::Doc::openapi(),
        robots::Doc::openapi(),
        purge_audit::Doc::openapi(),
        gc::Doc::openapi(),
        audit_logs::Doc::openapi(),
        repositories::Doc::openapi(),
        retention::Doc::openapi(),
        artifacts::Doc::openapi(),
        quotas::Doc::openapi(),
        immutable::Doc::openapi(),
        labels::Doc::openapi(),
        search::Doc::openapi(),
        statistics::Doc::openapi(),
        webhooks::Doc::openapi(),
        registries::Doc::openapi(),
        replication::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller::anonymous(req.peer_addr().map(|a| a.ip().to_string())));
        ready(Ok(caller))
    }
}

/// The project named by a `{project_name_or_id}` path segment, and what the
/// caller may do in it. A number is an id unless the request says
/// `X-Is-Resource-Name: true` (Harbor's rule). A project the caller may not
/// see is "not found", exactly like one that does not exist, so private
/// projects do not leak their existence.
pub async fn project_access(
    req: &HttpRequest,
    pool: &PgPool,
    caller: &Caller,
    name_or_id: &str,
) -> ApiResult<ProjectAccess> {
    let is_name = req
        .headers()
        .get("x-is-resource-name")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let found = match name_or_id.parse::<i64>() {
        Ok(id) if !is_name => get_project(pool, id).await,
        _ => get_project_by_name(pool, name_or_id).await,
    };
    let project = match found {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(project_not_found(name_or_id)),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, &caller.principal, project).await?;
    if !access.can_see() {
        return Err(project_not_found(name_or_id));
    }
    Ok(access)
}

fn project_not_found(name_or_id: &str) -> ApiError {
    ApiError::not_found(format!("project {name_or_id} not found"))
}

/// Require `action` on `resource` in the project: 401 for anonymous callers
/// (they may sign in), 403 for everyone else.
pub fn require(
    caller: &Caller,
    access: &ProjectAccess,
    resource: &str,
    action: &str,
) -> ApiResult<()> {
    if access.allows(resource, action) {
        return Ok(());
    }
    Err(denied(caller, resource, action))
}

/// Require the system-level `action` on `resource`.
pub fn require_system(caller: &Caller, resource: &str, action: &str) -> ApiResult<()> {
    if caller.principal.can_system(resource, action) {
        return Ok(());
    }
    Err(denied(caller, resource, action))
}

/// Require a signed-in caller.
pub fn require_authenticated(caller: &Caller) -> ApiResult<()> {
    if caller.principal.is_authenticated() {
        Ok(())
    } else {
        Err(ApiError::unauthorized("sign in first: send credentials"))
    }
}

fn denied(caller: &Caller, resource: &str, action: &str) -> ApiError {
    let what = if resource.is_empty() {
        "project".to_owned()
    } else {
        resource.to_owned()
    };
    if caller.principal.is_authenticated() {
        ApiError::forbidden(format!(
            "{} is not allowed to {action} {what}",
            caller.principal.audit_name()
        ))
    } else {
        ApiError::unauthorized(format!("sign in to {action} {what}"))
    }
}
