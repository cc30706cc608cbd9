//! Robot accounts (`/robots`), Harbor's v2 robot API.
//!
//! Who may do what follows the robot's level: a system robot needs the
//! system permission `robot:<action>` (system administrators, or a system
//! robot granted it), a project robot needs `robot:<action>` in its project
//! (by role: only projectAdmin may create, update or delete). A robot of a
//! project the caller may not see is "not found", like the project itself.
//!
//! The secret is shown exactly twice in a robot's life: in the answer to its
//! creation and in the answer to a refresh that generated it. Every change is
//! written to the audit log in the transaction that makes it, never with the
//! secret.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::ErrorsBody;
use super::{
    ApiError, ApiResult, ApiSettings, Matcher, PageParams, Query, paginated, require,
    require_authenticated, require_system,
};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::projects::{get_project, get_project_by_name};
use crate::robots::{
    self, NewRobot, PermissionKind, PermissionSpec, Robot, RobotAccess, RobotLevel,
    RobotPermission, RobotQuery, RobotSort, RobotSortKey, RobotUpdate,
};
use crate::security::{Caller, Principal, ProjectAccess};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_robots,
        create_robot,
        get_robot,
        update_robot,
        refresh_secret,
        delete_robot
    ),
    components(schemas(
        RobotView,
        RobotCreate,
        RobotCreated,
        RobotSec,
        PermissionBody,
        AccessBody
    ))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/robots")
            .route(web::get().to(list_robots))
            .route(web::post().to(create_robot)),
    )
    .service(
        web::resource("/robots/{robot_id}")
            .route(web::get().to(get_robot))
            .route(web::put().to(update_robot))
            .route(web::patch().to(refresh_secret))
            .route(web::delete().to(delete_robot)),
    );
}

/// One permission entry: what a robot may do in one namespace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = RobotPermission)]
pub struct PermissionBody {
    /// `system` (system resources, namespace `/`) or `project`.
    #[serde(default)]
    pub kind: String,
    /// `/` for system permissions; a project name, or `*` for every project
    /// (system-level robots only).
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub access: Vec<AccessBody>,
}

/// One granted (resource, action).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Access)]
pub struct AccessBody {
    /// Harbor's resource name (`repository`, `artifact`, `robot`, ...).
    #[serde(default)]
    pub resource: String,
    /// Harbor's action name (`pull`, `push`, `create`, `read`, `list`, ...).
    #[serde(default)]
    pub action: String,
    /// Only `allow` (or nothing) is accepted: robots hold grants, never
    /// denials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// A robot account as the API shows it; the secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Robot)]
pub struct RobotView {
    pub id: i64,
    /// The login name: the robot prefix and the stored name
    /// (`robot$ci`, `robot$library+ci`).
    pub name: String,
    pub description: String,
    /// `system` or `project`.
    pub level: String,
    /// Lifetime in days; -1 never expires.
    pub duration: i64,
    /// Always true: every Wharf robot is a v2 robot.
    pub editable: bool,
    pub disable: bool,
    /// Seconds since the epoch; -1 never.
    pub expires_at: i64,
    pub permissions: Vec<PermissionBody>,
    /// `local` (created by a user) or `robot`.
    pub creator_type: String,
    /// The id of the creating user or robot.
    pub creator_ref: i64,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl RobotView {
    fn new(robot: Robot, prefix: &str) -> Self {
        RobotView {
            id: robot.id,
            name: robot.login_name(prefix),
            level: level_name(robot.level()).to_owned(),
            duration: robot.duration_days,
            editable: true,
            disable: robot.disabled,
            expires_at: robot.expires_at_epoch(),
            permissions: robot.permissions.iter().map(permission_body).collect(),
            creator_type: robot.creator_type,
            creator_ref: robot.creator_ref,
            creation_time: robot.created_at,
            update_time: robot.updated_at,
            description: robot.description,
        }
    }
}

fn permission_body(p: &RobotPermission) -> PermissionBody {
    PermissionBody {
        kind: match p.kind {
            PermissionKind::System => "system",
            PermissionKind::Project => "project",
        }
        .to_owned(),
        namespace: p.namespace.clone(),
        access: p
            .access
            .iter()
            .map(|a| AccessBody {
                resource: a.resource.clone(),
                action: a.action.clone(),
                effect: None,
            })
            .collect(),
    }
}

/// The request to create a robot account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RobotCreate {
    /// The short name (`ci`): lowercase letters and digits separated by
    /// single `.`, `_` or `-`. A project robot is stored as `<project>+<name>`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Accepted and ignored, as in Harbor: the secret is always generated.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "part of Harbor's request shape, deliberately ignored"
    )]
    pub secret: Option<String>,
    /// `system` or `project`.
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub disable: bool,
    /// Lifetime in days, -1 for never.
    #[serde(default)]
    pub duration: i64,
    /// A project robot takes exactly one entry, for its project.
    #[serde(default)]
    pub permissions: Vec<PermissionBody>,
}

/// The answer to a creation: the only time the generated secret is shown
/// besides a refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct RobotCreated {
    pub id: i64,
    /// The login name (`robot$library+ci`).
    pub name: String,
    /// The plain secret; store it now, it cannot be read again.
    pub secret: String,
    pub creation_time: DateTime<Utc>,
    /// Seconds since the epoch; -1 never.
    pub expires_at: i64,
}

/// A secret refresh: send no secret (or an empty one) to have one generated
/// and returned; send your own (8–128 characters with an uppercase letter,
/// a lowercase letter and a digit) and the answer's secret is empty.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RobotSec {
    #[serde(default)]
    pub secret: Option<String>,
}

/// The body of `PUT /robots/{robot_id}`: Harbor's `Robot` object. Name and
/// level must be those of the robot (or absent); read-only fields are
/// ignored.
#[derive(Debug, Deserialize)]
struct RobotChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    description: String,
    /// Absent keeps the current lifetime.
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    permissions: Vec<PermissionBody>,
}

/// Query parameters of `GET /robots`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Harbor's query: `Level=system|project`, `ProjectID=<id>` (project
    /// robots of that project), `name=~<text>` (fuzzy) or `name=<name>`.
    pub q: Option<String>,
    /// Comma-separated keys, `-` for descending: `id`, `name`,
    /// `creation_time`, `update_time`, `expires_at`, `duration`.
    pub sort: Option<String>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1 to 100 (default 10).
    pub page_size: Option<i64>,
}

fn level_name(level: RobotLevel) -> &'static str {
    match level {
        RobotLevel::System => "system",
        RobotLevel::Project => "project",
    }
}

fn parse_level(level: &str) -> ApiResult<RobotLevel> {
    match level {
        "system" => Ok(RobotLevel::System),
        "project" => Ok(RobotLevel::Project),
        other => Err(ApiError::bad_request(format!(
            "level must be \"system\" or \"project\", not {other:?}"
        ))),
    }
}

/// The body as JSON of type `T`; malformed JSON is a 400 in Harbor's
/// envelope saying what is wrong.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn robot_id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("robot_id must be an integer, not {raw:?}")))
}

fn robot_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("robot account {id} not found"))
}

fn specs(permissions: &[PermissionBody]) -> ApiResult<Vec<PermissionSpec>> {
    permissions
        .iter()
        .map(|p| {
            let access = p
                .access
                .iter()
                .map(|a| match a.effect.as_deref() {
                    None | Some("") | Some("allow") => Ok(RobotAccess {
                        resource: a.resource.clone(),
                        action: a.action.clone(),
                    }),
                    Some(other) => Err(ApiError::bad_request(format!(
                        "effect {other:?} on {}:{} is not supported: robots hold grants only \
                         (\"allow\")",
                        a.resource, a.action
                    ))),
                })
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(PermissionSpec {
                kind: p.kind.clone(),
                namespace: p.namespace.clone(),
                access,
            })
        })
        .collect()
}

/// What the caller may do in the project with this id; a project it may
/// not see (or that is gone) is reported with `missing`.
async fn access_by_id(
    pool: &PgPool,
    caller: &Caller,
    project_id: i64,
    missing: impl FnOnce() -> ApiError,
) -> ApiResult<ProjectAccess> {
    let project = match get_project(pool, project_id).await {
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

/// Require `robot:<action>` for managing `robot`, per its level.
async fn authorize(pool: &PgPool, caller: &Caller, robot: &Robot, action: &str) -> ApiResult<()> {
    match robot.project_id {
        None => require_system(caller, "robot", action),
        Some(project_id) => {
            let access =
                access_by_id(pool, caller, project_id, || robot_not_found(robot.id)).await?;
            require(caller, &access, "robot", action)
        }
    }
}

/// A robot may hand out only what it holds itself (Harbor's
/// `isValidPermissionScope`): every requested (resource, action) must be in
/// the creator's permission of the same kind and namespace, where the
/// creator's `*` covers any project.
fn within_creator_grants(requested: &[PermissionSpec], creator: &Robot) -> bool {
    requested.iter().all(|spec| {
        let held: Vec<&RobotPermission> = creator
            .permissions
            .iter()
            .filter(|p| {
                let kind = match p.kind {
                    PermissionKind::System => "system",
                    PermissionKind::Project => "project",
                };
                kind == spec.kind
                    && (p.namespace == spec.namespace
                        || (p.kind == PermissionKind::Project && p.namespace == "*"))
            })
            .collect();
        spec.access
            .iter()
            .all(|a| held.iter().any(|p| p.access.contains(a)))
    })
}

fn audit_entry<'a>(
    caller: &'a Caller,
    robot: &Robot,
    operation: &'a str,
    description: &'a str,
    login_name: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: robot.project_id,
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type: "robot",
        resource: login_name,
        client_addr: caller.client_addr.as_deref(),
    }
}

/// List robot accounts of the system or of one project.
#[utoipa::path(
    get,
    path = "/robots",
    operation_id = "ListRobot",
    tag = "robot",
    params(ListParams),
    responses(
        (status = 200, description = "One page of robot accounts", body = Vec<RobotView>,
         headers(("X-Total-Count" = i64, description = "How many robots match"),
                 ("Link" = String, description = "Links to the previous and next pages"))),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list these robots", body = ErrorsBody),
        (status = 404, description = "No such project", body = ErrorsBody),
    )
)]
pub async fn list_robots(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let params = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?
        .into_inner();
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .page()?;
    let q = Query::parse(params.q.as_deref(), &["Level", "ProjectID", "name"])?;
    let exact = |key: &str| -> ApiResult<Option<String>> {
        match q.get(key) {
            None => Ok(None),
            Some(Matcher::Exact(v)) => Ok(Some(v.clone())),
            Some(_) => Err(ApiError::bad_request(format!(
                "{key} takes an exact value ({key}=...)"
            ))),
        }
    };
    let project_id = exact("ProjectID")?
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("ProjectID must be an integer, not {v:?}"))
            })
        })
        .transpose()?;
    let level = match exact("Level")? {
        Some(level) => parse_level(&level)?,
        None if project_id.is_some() => RobotLevel::Project,
        None => RobotLevel::System,
    };
    let mut query = RobotQuery {
        level: Some(level),
        page,
        ..RobotQuery::default()
    };
    match (level, project_id) {
        (RobotLevel::System, None) => require_system(&caller, "robot", "list")?,
        (RobotLevel::System, Some(_)) => {
            return Err(ApiError::bad_request(
                "ProjectID selects project robots: it cannot be combined with Level=system",
            ));
        }
        (RobotLevel::Project, None) => {
            return Err(ApiError::bad_request(
                "listing project robots needs the project: q=Level=project,ProjectID=<id>",
            ));
        }
        (RobotLevel::Project, Some(id)) => {
            let access = access_by_id(&pool, &caller, id, || {
                ApiError::not_found(format!("project {id} not found"))
            })
            .await?;
            require(&caller, &access, "robot", "list")?;
            query.project_id = Some(id);
        }
    }
    match q.get("name") {
        None => {}
        Some(Matcher::Fuzzy(text)) => query.name_contains = Some(text.clone()),
        Some(Matcher::Exact(name)) => {
            let stored = name
                .strip_prefix(settings.robot_prefix.as_str())
                .unwrap_or(name);
            query.name = Some(stored.to_owned());
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "name takes an exact (name=ci) or fuzzy (name=~ci) value",
            ));
        }
    }
    if let Some(sort) = params.sort.as_deref() {
        for term in sort.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, descending) = match term.strip_prefix('-') {
                Some(key) => (key, true),
                None => (term, false),
            };
            let key = RobotSortKey::parse(key).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "cannot sort robots by {key:?} (use id, name, creation_time, update_time, \
                     expires_at or duration)"
                ))
            })?;
            query.sort.push(RobotSort { key, descending });
        }
    }
    let listing = robots::list_robots(pool.get_ref(), &query).await?;
    let prefix = settings.robot_prefix.clone();
    Ok(paginated(&req, listing, page, |robot| {
        RobotView::new(robot, &prefix)
    }))
}

/// Create a robot account; the answer carries its secret, shown only here.
#[utoipa::path(
    post,
    path = "/robots",
    operation_id = "CreateRobot",
    tag = "robot",
    request_body = RobotCreate,
    responses(
        (status = 201, description = "Created", body = RobotCreated,
         headers(("Location" = String, description = "The new robot: /api/v2.0/robots/{id}"))),
        (status = 400, description = "Invalid name, level, duration or permissions", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed, or more than the creating robot holds", body = ErrorsBody),
        (status = 404, description = "No such project", body = ErrorsBody),
        (status = 409, description = "A robot of that name exists", body = ErrorsBody),
    )
)]
pub async fn create_robot(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let body: RobotCreate = json_body(&body)?;
    let level = parse_level(&body.level)?;
    let requested = specs(&body.permissions)?;
    match level {
        RobotLevel::System => require_system(&caller, "robot", "create")?,
        RobotLevel::Project => {
            let [permission] = requested.as_slice() else {
                return Err(ApiError::bad_request(
                    "a project-level robot takes exactly one permission entry, for its project",
                ));
            };
            if permission.namespace == "*" {
                return Err(ApiError::bad_request(
                    "only system-level robots may cover every project (\"*\"); a project robot \
                     names its project",
                ));
            }
            let project = match get_project_by_name(pool.get_ref(), &permission.namespace).await {
                Ok(project) => project,
                Err(Error::NotFound) => {
                    return Err(ApiError::not_found(format!(
                        "project {} not found",
                        permission.namespace
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let access = ProjectAccess::load(pool.get_ref(), &caller.principal, project).await?;
            if !access.can_see() {
                return Err(ApiError::not_found(format!(
                    "project {} not found",
                    permission.namespace
                )));
            }
            require(&caller, &access, "robot", "create")?;
        }
    }
    let (creator_type, creator_ref) = match &caller.principal {
        Principal::User(user) => ("local", user.id),
        Principal::Robot { robot, login_name } => {
            if !within_creator_grants(&requested, robot) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "DENIED",
                    format!(
                        "permission scope is invalid: it must be equal to or narrower than the \
                         permissions of the creating robot {login_name}"
                    ),
                ));
            }
            ("robot", robot.id)
        }
        Principal::Anonymous => {
            return Err(ApiError::unauthorized("sign in first: send credentials"));
        }
    };
    let new = NewRobot {
        name: body.name,
        description: body.description,
        level,
        duration_days: body.duration,
        disabled: body.disable,
        permissions: requested,
        creator_type: creator_type.to_owned(),
        creator_ref,
    };
    let mut tx = pool.begin().await?;
    let created = robots::create_robot(&mut *tx, &new).await?;
    let login_name = created.robot.login_name(&settings.robot_prefix);
    let description = format!("created robot account {login_name}");
    audit::record(
        &mut *tx,
        &audit_entry(&caller, &created.robot, "create", &description, &login_name),
    )
    .await?;
    tx.commit().await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), created.robot.id);
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location))
        .json(RobotCreated {
            id: created.robot.id,
            name: login_name,
            secret: created.secret,
            creation_time: created.robot.created_at,
            expires_at: created.robot.expires_at_epoch(),
        }))
}

/// One robot account (without its secret).
#[utoipa::path(
    get,
    path = "/robots/{robot_id}",
    operation_id = "GetRobotByID",
    tag = "robot",
    params(("robot_id" = i64, Path, description = "The robot's id")),
    responses(
        (status = 200, description = "The robot", body = RobotView),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read it", body = ErrorsBody),
        (status = 404, description = "No such robot", body = ErrorsBody),
    )
)]
pub async fn get_robot(
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let robot = load(&pool, robot_id(&path)?).await?;
    authorize(&pool, &caller, &robot, "read").await?;
    Ok(HttpResponse::Ok().json(RobotView::new(robot, &settings.robot_prefix)))
}

async fn load(pool: &PgPool, id: i64) -> ApiResult<Robot> {
    match robots::get_robot(pool, id).await {
        Ok(robot) => Ok(robot),
        Err(Error::NotFound) => Err(robot_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// Change a robot's description, lifetime, disabled flag and permissions;
/// its name and level cannot change.
#[utoipa::path(
    put,
    path = "/robots/{robot_id}",
    operation_id = "UpdateRobot",
    tag = "robot",
    params(("robot_id" = i64, Path, description = "The robot's id")),
    request_body(content = RobotView, description = "The robot as `GET` returns it, changed; \
        read-only fields are ignored"),
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Name or level changed, or invalid duration or permissions", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update it", body = ErrorsBody),
        (status = 404, description = "No such robot", body = ErrorsBody),
        (status = 409, description = "Conflict", body = ErrorsBody),
    )
)]
pub async fn update_robot(
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let robot = load(&pool, robot_id(&path)?).await?;
    authorize(&pool, &caller, &robot, "update").await?;
    let change: RobotChange = json_body(&body)?;
    let login_name = robot.login_name(&settings.robot_prefix);
    if let Some(name) = change.name.as_deref()
        && name != login_name
        && name != robot.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of a robot cannot change ({login_name}, not {name:?})"
        )));
    }
    if let Some(level) = change.level.as_deref()
        && parse_level(level)? != robot.level()
    {
        return Err(ApiError::bad_request(format!(
            "the level of a robot cannot change (it is {})",
            level_name(robot.level())
        )));
    }
    let update = RobotUpdate {
        description: change.description,
        duration_days: change.duration.unwrap_or(robot.duration_days),
        disabled: change.disable,
        permissions: specs(&change.permissions)?,
    };
    let mut tx = pool.begin().await?;
    let updated = robots::update_robot(&mut *tx, robot.id, &update).await?;
    let description = format!("updated robot account {login_name}");
    audit::record(
        &mut *tx,
        &audit_entry(&caller, &updated, "update", &description, &login_name),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Replace a robot's secret: a generated one (returned, to show once) or
/// the caller's own (not echoed).
#[utoipa::path(
    patch,
    path = "/robots/{robot_id}",
    operation_id = "RefreshSec",
    tag = "robot",
    params(("robot_id" = i64, Path, description = "The robot's id")),
    request_body(content = RobotSec, description = "No secret (or an empty one) to generate \
        one; your own secret to set it"),
    responses(
        (status = 200, description = "The new generated secret, or \"\" when you chose it", body = RobotSec),
        (status = 400, description = "The chosen secret breaks the policy", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update it", body = ErrorsBody),
        (status = 404, description = "No such robot", body = ErrorsBody),
    )
)]
pub async fn refresh_secret(
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let robot = load(&pool, robot_id(&path)?).await?;
    authorize(&pool, &caller, &robot, "update").await?;
    let request: RobotSec = if body.iter().all(u8::is_ascii_whitespace) {
        RobotSec::default()
    } else {
        json_body(&body)?
    };
    let chosen = request.secret.as_deref().filter(|s| !s.is_empty());
    let login_name = robot.login_name(&settings.robot_prefix);
    let mut tx = pool.begin().await?;
    let generated = robots::refresh_secret(&mut *tx, robot.id, chosen).await?;
    let description = if generated.is_some() {
        format!("generated a new secret for robot account {login_name}")
    } else {
        format!("set a chosen secret for robot account {login_name}")
    };
    audit::record(
        &mut *tx,
        &audit_entry(&caller, &robot, "update", &description, &login_name),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(RobotSec {
        secret: Some(generated.unwrap_or_default()),
    }))
}

/// Delete a robot account; its secret stops working at once.
#[utoipa::path(
    delete,
    path = "/robots/{robot_id}",
    operation_id = "DeleteRobot",
    tag = "robot",
    params(("robot_id" = i64, Path, description = "The robot's id")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Bad id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete it", body = ErrorsBody),
        (status = 404, description = "No such robot", body = ErrorsBody),
    )
)]
pub async fn delete_robot(
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<ApiSettings>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let robot = load(&pool, robot_id(&path)?).await?;
    authorize(&pool, &caller, &robot, "delete").await?;
    let login_name = robot.login_name(&settings.robot_prefix);
    let mut tx = pool.begin().await?;
    match robots::delete_robot(&mut *tx, robot.id).await {
        Ok(()) => {}
        Err(Error::NotFound) => return Err(robot_not_found(robot.id)),
        Err(e) => return Err(e.into()),
    }
    let description = format!("deleted robot account {login_name}");
    audit::record(
        &mut *tx,
        &audit_entry(&caller, &robot, "delete", &description, &login_name),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}
