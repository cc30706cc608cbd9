//! `/projects`: projects, their settings (metadata) and summaries, as
//! Harbor's `project` and `projectMetadata` APIs.
//!
//! A project the caller may not see answers 404, exactly like one that does
//! not exist ([`super::project_access`]). Anyone signed in may create
//! projects (Harbor's default `project_creation_restriction = everyone`);
//! robots only with the system `project:create` grant, which only system
//! robots can hold. Only system administrators create proxy-cache projects
//! (`registry_id`, a replication endpoint; see docs/proxy-cache.md). CVE
//! allowlists are not supported yet and are refused rather than silently
//! dropped.
//!
//! One deliberate difference from Harbor: listing a project's metadata needs
//! `metadata:read`, not `metadata:list`, which no Harbor role holds (so only
//! system administrators could list metadata there).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query};
use super::query::{parse_sort, text_filter};
use super::{ApiError, ApiResult, PageParams, paginated, project_access, require, require_system};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::members::{member_role_counts, member_roles, roles_in_projects};
use crate::names::ProjectName;
use crate::projects::{
    NewProject, Project as StoredProject, ProjectSearch, ProjectSort, create_project,
    delete_metadata, delete_project, get_project_by_name, repository_count, repository_counts,
    search_projects, set_metadata, validate_metadata,
};
use crate::robots::PermissionKind;
use crate::roles::Role;
use crate::security::{Caller, Principal, ProjectAccess};
use crate::users::{TextMatch, first_sysadmin};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_projects,
        head_project,
        create_project_handler,
        get_project,
        update_project,
        delete_project_handler,
        project_deletable,
        project_summary,
        list_metadata,
        add_metadata,
        get_metadata,
        update_metadata,
        delete_metadata_handler
    ),
    components(schemas(
        Project,
        ProjectReq,
        CveAllowlist,
        CveAllowlistItem,
        ProjectDeletable,
        ProjectSummary,
        ProjectSummaryQuota
    ))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects")
            .route(web::get().to(list_projects))
            .route(web::head().to(head_project))
            .route(web::post().to(create_project_handler)),
    )
    .service(
        resource("/projects/{project_name_or_id}")
            .route(web::get().to(get_project))
            .route(web::put().to(update_project))
            .route(web::delete().to(delete_project_handler)),
    )
    .service(
        resource("/projects/{project_name_or_id}/_deletable")
            .route(web::get().to(project_deletable)),
    )
    .service(
        resource("/projects/{project_name_or_id}/summary").route(web::get().to(project_summary)),
    );
    // Harbor's path ends in a slash; clients that drop it are served too.
    for path in [
        "/projects/{project_name_or_id}/metadatas/",
        "/projects/{project_name_or_id}/metadatas",
    ] {
        cfg.service(
            resource(path)
                .route(web::get().to(list_metadata))
                .route(web::post().to(add_metadata)),
        );
    }
    cfg.service(
        resource("/projects/{project_name_or_id}/metadatas/{meta_name}")
            .route(web::get().to(get_metadata))
            .route(web::put().to(update_metadata))
            .route(web::delete().to(delete_metadata_handler)),
    );
}

// ---------------------------------------------------------------------------
// Shapes.

/// A project as Harbor shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub project_id: i64,
    /// The creator.
    pub owner_id: i64,
    pub name: String,
    /// The replication endpoint a proxy-cache project mirrors; null otherwise.
    pub registry_id: Option<i64>,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub deleted: bool,
    pub owner_name: String,
    /// Whether the UI may toggle the project's publicity (as Harbor: false).
    pub togglable: bool,
    /// The caller's most powerful role id, 0 for none (deprecated in Harbor).
    pub current_user_role_id: i64,
    /// The caller's role ids in the project.
    pub current_user_role_ids: Vec<i64>,
    /// How many repositories the project holds.
    pub repo_count: i64,
    /// Harbor's settings map: `public`, `auto_scan`, `severity`, ...
    pub metadata: BTreeMap<String, String>,
    /// The project's CVE allowlist (always empty until scanning arrives).
    pub cve_allowlist: CveAllowlist,
}

/// A CVE allowlist.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = CVEAllowlist)]
pub struct CveAllowlist {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub project_id: i64,
    /// Seconds since the epoch; null means never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub items: Vec<CveAllowlistItem>,
}

/// One allowlisted CVE.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CVEAllowlistItem)]
pub struct CveAllowlistItem {
    pub cve_id: String,
}

/// What `POST /projects` and `PUT /projects/{p}` take.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ProjectReq {
    /// The name (creation only; a project cannot be renamed).
    pub project_name: Option<String>,
    /// Deprecated: `metadata.public` wins when both are given.
    pub public: Option<bool>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// Must be empty: CVE allowlists are not supported yet.
    pub cve_allowlist: Option<CveAllowlist>,
    /// Storage quota in bytes, -1 for unlimited (system administrators only).
    pub storage_limit: Option<i64>,
    /// Make the project a pull-through cache of this replication endpoint
    /// (system administrators only).
    pub registry_id: Option<i64>,
}

/// Whether a project can be deleted now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectDeletable {
    pub deletable: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Counts and quota of a project. Member counts appear only to callers who
/// may list members, the quota only to those who may read it.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ProjectSummary {
    pub repo_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_admin_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintainer_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub developer_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_guest_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<ProjectSummaryQuota>,
}

/// Hard limits and usage per resource (only `storage`, in bytes).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ProjectSummaryQuota {
    pub hard: BTreeMap<String, i64>,
    pub used: BTreeMap<String, i64>,
}

/// Query of `GET /projects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListProjectsParams {
    /// Harbor's query: `name` (exact or fuzzy), `public`, `owner`,
    /// `project_id` (exact or `{1 2 3}`).
    pub q: Option<String>,
    /// `name`, `project_id`, `creation_time`, `update_time`; `-` for descending.
    pub sort: Option<String>,
    /// Part of the project name.
    pub name: Option<String>,
    /// Only public or only private projects.
    pub public: Option<bool>,
    /// The owner's username.
    pub owner: Option<String>,
}

/// Query of `HEAD /projects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeadProjectParams {
    /// The name to check.
    pub project_name: Option<String>,
}

// ---------------------------------------------------------------------------
// Helpers.

fn entry<'a>(
    caller: &'a Caller,
    project_id: i64,
    operation: &'a str,
    resource_type: &'a str,
    resource: &'a str,
    description: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: Some(project_id),
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type,
        resource,
        client_addr: caller.client_addr.as_deref(),
    }
}

fn to_json(project: StoredProject, roles: &[Role], repo_count: i64) -> Project {
    let top = Role::ALL.into_iter().find(|r| roles.contains(r));
    let mut role_ids: Vec<i64> = roles.iter().map(|r| i64::from(r.id())).collect();
    role_ids.sort_unstable();
    Project {
        cve_allowlist: CveAllowlist {
            project_id: project.id,
            ..CveAllowlist::default()
        },
        project_id: project.id,
        owner_id: project.owner_id,
        name: project.name,
        registry_id: project.registry_id,
        creation_time: project.created_at,
        update_time: project.updated_at,
        deleted: false,
        owner_name: project.owner_name,
        togglable: false,
        current_user_role_id: top.map_or(0, |r| i64::from(r.id())),
        current_user_role_ids: role_ids,
        repo_count,
        metadata: project.metadata,
    }
}

/// Harbor's boolean spellings (`strconv.ParseBool`) as `"true"`/`"false"`.
fn normalise_bool(value: &str) -> Option<&'static str> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some("true"),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some("false"),
        _ => None,
    }
}

/// Metadata keys only proxy-cache projects use; Harbor drops them for
/// other projects, and so does Wharf.
const PROXY_ONLY_KEYS: &[&str] = &[
    "proxy_speed_kb",
    "max_upstream_conn",
    "proxy_cache_local_on_not_found",
    "proxy_referrer_api",
    "proxy_cache_filter_pattern",
    "proxy_cache_filter_kind",
];

/// Check a metadata map from a project request; returns what to store.
fn clean_metadata(mut metadata: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    metadata.retain(|k, _| !PROXY_ONLY_KEYS.contains(&k.as_str()));
    if let Some(retention) = metadata.remove("retention_id")
        && !retention.is_empty()
    {
        return Err(ApiError::bad_request(
            "retention_id cannot be set here: omit it or pass an empty string",
        ));
    }
    if let Some(public) = metadata.get("public")
        && public != "true"
        && public != "false"
    {
        return Err(ApiError::bad_request(format!(
            "metadata.public should only be 'true' or 'false', but got: '{public}'"
        )));
    }
    // Harbor lowercases the severity; so does Wharf before validating.
    if let Some(severity) = metadata.get_mut("severity") {
        *severity = severity.to_lowercase();
    }
    for (key, value) in &metadata {
        validate_metadata(key, value)?;
    }
    Ok(metadata)
}

fn refuse_unsupported(req: &ProjectReq) -> ApiResult<()> {
    if req
        .cve_allowlist
        .as_ref()
        .is_some_and(|list| !list.items.is_empty())
    {
        return Err(ApiError::bad_request(
            "project CVE allowlists are not supported yet",
        ));
    }
    Ok(())
}

/// `see_all`, the member user and the granted project ids for listing.
fn visibility(principal: &Principal) -> (bool, Option<i64>, Vec<i64>) {
    match principal {
        Principal::Anonymous => (false, None, Vec::new()),
        Principal::User(user) => (user.sysadmin, Some(user.id), Vec::new()),
        Principal::Robot { robot, .. } => {
            let projects = robot
                .permissions
                .iter()
                .filter(|p| p.kind == PermissionKind::Project);
            let covers_all = projects.clone().any(|p| p.namespace == "*")
                || principal.can_system("project", "list");
            let granted = projects.filter_map(|p| p.project_id).collect();
            (covers_all, None, granted)
        }
    }
}

fn bool_term(query: &Query, key: &str) -> ApiResult<Option<bool>> {
    match query.get(key) {
        None => Ok(None),
        Some(Matcher::Exact(v)) => match v.as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(ApiError::bad_request(format!(
                "query key {key} must be true or false"
            ))),
        },
        Some(_) => Err(ApiError::bad_request(format!(
            "query key {key} supports only exact matching"
        ))),
    }
}

fn id_terms(query: &Query, key: &str) -> ApiResult<Option<Vec<i64>>> {
    let parse = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("query key {key} takes numbers")))
    };
    match query.get(key) {
        None => Ok(None),
        Some(Matcher::Exact(v)) => Ok(Some(vec![parse(v)?])),
        Some(Matcher::Union(vs)) => vs
            .iter()
            .map(|v| parse(v))
            .collect::<ApiResult<_>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(format!(
            "query key {key} supports exact (k=v) or union (k={{v1 v2}}) matching"
        ))),
    }
}

/// Every project `principal` may see, by the same rule as `GET /projects`
/// (optionally only those whose name contains `name_contains`), in name
/// order. For `/search` and `/statistics`, which must agree with the
/// project listing.
pub(super) async fn visible_projects(
    pool: &PgPool,
    principal: &Principal,
    name_contains: Option<&str>,
) -> ApiResult<Vec<StoredProject>> {
    let (see_all, member, granted) = visibility(principal);
    let mut search = ProjectSearch {
        see_all,
        member,
        granted,
        name: name_contains.map(|text| TextMatch::Contains(text.to_owned())),
        page: crate::Page {
            page: 1,
            page_size: crate::Page::MAX_SIZE,
        },
        ..ProjectSearch::default()
    };
    let mut projects = Vec::new();
    loop {
        let listing = search_projects(pool, &search).await?;
        let last = listing.items.len() < crate::Page::MAX_SIZE as usize;
        projects.extend(listing.items);
        if last || i64::try_from(projects.len()).unwrap_or(i64::MAX) >= listing.total {
            return Ok(projects);
        }
        search.page.page += 1;
    }
}

/// `projects` as `GET /projects` shows them to `principal` (its roles,
/// repository counts).
pub(super) async fn projects_json(
    pool: &PgPool,
    principal: &Principal,
    projects: Vec<StoredProject>,
) -> ApiResult<Vec<Project>> {
    let ids: Vec<i64> = projects.iter().map(|p| p.id).collect();
    let names: Vec<String> = projects.iter().map(|p| p.name.clone()).collect();
    let roles = match principal.user() {
        Some(user) => roles_in_projects(pool, user.id, &ids).await?,
        None => BTreeMap::new(),
    };
    let counts = repository_counts(pool, &names).await?;
    Ok(projects
        .into_iter()
        .map(|project| {
            let held = roles.get(&project.id).map_or(&[][..], Vec::as_slice);
            let count = counts.get(&project.name).copied().unwrap_or(0);
            to_json(project, held, count)
        })
        .collect())
}

async fn stored_repo_count(pool: &PgPool, project: &StoredProject) -> ApiResult<i64> {
    Ok(repository_count(pool, &project.name).await?)
}

// ---------------------------------------------------------------------------
// Project handlers.

/// List the projects the caller may see: everything for system
/// administrators, public ones and their own for users, public ones for
/// anonymous callers.
#[utoipa::path(
    get, path = "/projects", tag = "project", operation_id = "listProjects",
    params(
        ListProjectsParams,
        ("with_detail" = Option<bool>, Query,
         description = "Accepted for compatibility; the answer is always detailed"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of projects; X-Total-Count and Link headers", body = [Project]),
        (status = 400, description = "Bad query", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_projects(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListProjectsParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = paging.page()?;
    let query = Query::parse(
        params.q.as_deref(),
        &["name", "public", "owner", "project_id"],
    )?;
    let (see_all, member, granted) = visibility(&caller.principal);
    let owner = match query.get("owner") {
        None => None,
        Some(Matcher::Exact(v)) => Some(v.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key owner supports only exact matching",
            ));
        }
    };
    let search = ProjectSearch {
        see_all,
        member,
        granted,
        name: match params.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => Some(TextMatch::Contains(name.to_owned())),
            None => text_filter(&query, "name")?,
        },
        public: params.public.or(bool_term(&query, "public")?),
        owner: params.owner.clone().filter(|o| !o.is_empty()).or(owner),
        ids: id_terms(&query, "project_id")?,
        sort: parse_sort(
            params.sort.as_deref(),
            &[
                ("name", ProjectSort::Name),
                ("project_id", ProjectSort::Id),
                ("creation_time", ProjectSort::CreationTime),
                ("update_time", ProjectSort::UpdateTime),
            ],
        )?,
        page,
    };
    let listing = search_projects(pool.get_ref(), &search).await?;
    let ids: Vec<i64> = listing.items.iter().map(|p| p.id).collect();
    let names: Vec<String> = listing.items.iter().map(|p| p.name.clone()).collect();
    let roles = match caller.principal.user() {
        Some(user) => roles_in_projects(pool.get_ref(), user.id, &ids).await?,
        None => BTreeMap::new(),
    };
    let counts = repository_counts(pool.get_ref(), &names).await?;
    Ok(paginated(&req, listing, page, |project| {
        let held = roles.get(&project.id).map_or(&[][..], Vec::as_slice);
        let count = counts.get(&project.name).copied().unwrap_or(0);
        to_json(project, held, count)
    }))
}

/// Whether a project name is taken: 200 if so, 404 if not. Signed-in
/// callers learn about private projects too (they could not create one
/// with that name anyway); anonymous callers only about public ones.
#[utoipa::path(
    head, path = "/projects", tag = "project", operation_id = "headProject",
    params(HeadProjectParams),
    responses(
        (status = 200, description = "The name is taken"),
        (status = 400, description = "No project_name given"),
        (status = 404, description = "No such project"),
    ),
    security((), ("basic" = []))
)]
async fn head_project(
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<HeadProjectParams>,
) -> ApiResult<HttpResponse> {
    let Some(name) = params.project_name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(
            "the project_name parameter is required",
        ));
    };
    let project = match get_project_by_name(pool.get_ref(), name).await {
        Ok(project) => project,
        Err(Error::NotFound) => {
            return Err(ApiError::not_found(format!("project {name} not found")));
        }
        Err(e) => return Err(e.into()),
    };
    if !caller.principal.is_authenticated() && !project.is_public() {
        return Err(ApiError::not_found(format!("project {name} not found")));
    }
    Ok(HttpResponse::Ok().finish())
}

/// Create a project owned by the caller (robots: owned by the first system
/// administrator, as in Harbor).
#[utoipa::path(
    post, path = "/projects", tag = "project", operation_id = "createProject",
    params(("X-Resource-Name-In-Location" = Option<bool>, Header,
            description = "Put the name, not the id, in Location")),
    request_body = ProjectReq,
    responses(
        (status = 201, description = "Created; Location is /api/v2.0/projects/{id} (or the name)"),
        (status = 400, description = "Bad name, metadata or storage limit; proxy cache asked for", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "A robot without project:create", body = ErrorsBody),
        (status = 409, description = "The name is taken", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_project_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    settings: web::Data<super::ApiSettings>,
    body: web::Json<ProjectReq>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "project", "create")?;
    let body = body.into_inner();
    refuse_unsupported(&body)?;
    let name = ProjectName::parse(body.project_name.as_deref().unwrap_or_default())?;
    let mut metadata = body.metadata.unwrap_or_default();
    if !metadata.contains_key("public")
        && let Some(public) = body.public
    {
        metadata.insert("public".into(), public.to_string());
    }
    let metadata = clean_metadata(metadata)?;
    let public = metadata.get("public").is_some_and(|v| v == "true");
    // As in Harbor: only system administrators choose the quota; everyone
    // else (and a missing or zero limit) gets the configured default.
    let registry_id = body.registry_id.filter(|id| *id > 0);
    if registry_id.is_some() && !caller.principal.is_sysadmin() {
        return Err(ApiError::forbidden(
            "only system administrators may create proxy cache projects",
        ));
    }
    let storage_limit = match body.storage_limit {
        Some(limit) if limit != 0 && caller.principal.is_sysadmin() => {
            crate::quotas::check_hard_limit(limit)?;
            limit
        }
        _ => settings.default_storage_limit,
    };
    let mut tx = pool.begin().await?;
    let owner_id = match caller.principal.user() {
        Some(user) => user.id,
        None => first_sysadmin(&mut *tx).await?.id,
    };
    let new = NewProject {
        public,
        metadata,
        storage_limit,
        registry_id,
        ..NewProject::new(name, owner_id)
    };
    let project = create_project(&mut *tx, &new).await?;
    audit::record(
        &mut *tx,
        &entry(
            &caller,
            project.id,
            "create",
            "project",
            &project.name,
            "created the project",
        ),
    )
    .await?;
    tx.commit().await?;
    let by_name = req
        .headers()
        .get("x-resource-name-in-location")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(if by_name {
        super::created_at(&req, &project.name)
    } else {
        super::created_at(&req, project.id)
    })
}

/// One project the caller may see.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}", tag = "project", operation_id = "getProject",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_project(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    let count = stored_repo_count(&pool, &access.project).await?;
    let ProjectAccess {
        project, mut roles, ..
    } = access;
    // Access checks skip the role lookup for system administrators; the
    // answer still shows the roles they hold, as Harbor's does.
    if let Some(user) = caller.principal.user().filter(|u| u.sysadmin) {
        roles = member_roles(pool.get_ref(), project.id, user.id).await?;
    }
    Ok(HttpResponse::Ok().json(to_json(project, &roles, count)))
}

/// Update a project's metadata and (system administrators) storage limit.
#[utoipa::path(
    put, path = "/projects/{project_name_or_id}", tag = "project", operation_id = "updateProject",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = ProjectReq,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad metadata or storage limit", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update the project or its quota", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_project(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Json<ProjectReq>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "", "update")?;
    let body = body.into_inner();
    refuse_unsupported(&body)?;
    let project = access.project;
    let mut metadata = body.metadata.unwrap_or_default();
    if !metadata.contains_key("public")
        && let Some(public) = body.public
    {
        metadata.insert("public".into(), public.to_string());
    }
    let metadata = clean_metadata(metadata)?;
    let new_limit = body.storage_limit.filter(|&l| l != project.storage_limit);
    if new_limit.is_some() && !caller.principal.is_sysadmin() {
        return Err(ApiError::forbidden(
            "only system administrators can change the storage limit",
        ));
    }
    if let Some(limit) = new_limit {
        crate::quotas::check_hard_limit(limit)?;
    }
    let mut tx = pool.begin().await?;
    if !metadata.is_empty() {
        set_metadata(&mut *tx, project.id, &metadata).await?;
    }
    if let Some(limit) = new_limit {
        // Through the quota, so pushes in flight finish against the old
        // limit and the quota's update time moves.
        crate::quotas::set_hard_limit(&mut tx, project.id, limit).await?;
    }
    let mut changed: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(limit) = new_limit {
        changed.push(format!("storage_limit={limit}"));
    }
    let description = format!("updated {}", changed.join(", "));
    audit::record(
        &mut *tx,
        &entry(
            &caller,
            project.id,
            "update",
            "project",
            &project.name,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

const NOT_DELETABLE: &str = "the project contains repositories, can not be deleted";

/// Delete an empty project (412 while it holds repositories). Its members
/// and robots go with it.
#[utoipa::path(
    delete, path = "/projects/{project_name_or_id}", tag = "project", operation_id = "deleteProject",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete the project", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
        (status = 412, description = "The project still holds repositories", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_project_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "", "delete")?;
    let project = access.project;
    if stored_repo_count(&pool, &project).await? > 0 {
        return Err(ApiError::precondition(NOT_DELETABLE));
    }
    let mut tx = pool.begin().await?;
    match delete_project(&mut *tx, project.id).await {
        // A push between the check and the delete.
        Err(Error::Conflict(_)) => return Err(ApiError::precondition(NOT_DELETABLE)),
        other => other?,
    }
    audit::record(
        &mut *tx,
        &entry(
            &caller,
            project.id,
            "delete",
            "project",
            &project.name,
            "deleted the project",
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Whether the project can be deleted now (for callers who may delete it).
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/_deletable", tag = "project",
    operation_id = "getProjectDeletable",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Deletable or why not", body = ProjectDeletable),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete the project", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn project_deletable(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "", "delete")?;
    let deletable = stored_repo_count(&pool, &access.project).await? == 0;
    Ok(HttpResponse::Ok().json(ProjectDeletable {
        deletable,
        message: if deletable {
            String::new()
        } else {
            NOT_DELETABLE.to_owned()
        },
    }))
}

/// Repository count, members per role and quota of a project.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/summary", tag = "project",
    operation_id = "getProjectSummary",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The summary", body = ProjectSummary),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn project_summary(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    let project = &access.project;
    let mut summary = ProjectSummary {
        repo_count: stored_repo_count(&pool, project).await?,
        ..ProjectSummary::default()
    };
    if access.allows("member", "list") {
        let counts = member_role_counts(pool.get_ref(), project.id).await?;
        let count = |role| Some(counts.get(&role).copied().unwrap_or(0));
        summary.project_admin_count = count(Role::ProjectAdmin);
        summary.maintainer_count = count(Role::Maintainer);
        summary.developer_count = count(Role::Developer);
        summary.guest_count = count(Role::Guest);
        summary.limited_guest_count = count(Role::LimitedGuest);
    }
    if access.allows("quota", "read") {
        let quota = crate::quotas::quota_of_project(pool.get_ref(), project.id).await?;
        summary.quota = Some(ProjectSummaryQuota {
            hard: BTreeMap::from([("storage".to_owned(), quota.hard)]),
            used: BTreeMap::from([("storage".to_owned(), quota.used)]),
        });
    }
    Ok(HttpResponse::Ok().json(summary))
}

// ---------------------------------------------------------------------------
// Metadata handlers.

/// One metadata entry from a request body: exactly one pair (Harbor's
/// rule), with booleans normalised and the severity lowercased.
fn one_pair(body: BTreeMap<String, String>) -> ApiResult<(String, String)> {
    if body.len() != 1 {
        return Err(ApiError::bad_request("only allow one key/value pair"));
    }
    let (key, value) = body.into_iter().next().unwrap_or_default();
    let value = match key.as_str() {
        "severity" => value.to_lowercase(),
        _ => match normalise_bool(&value) {
            Some(b) => b.to_owned(),
            None => value,
        },
    };
    validate_metadata(&key, &value)?;
    Ok((key, value))
}

async fn write_metadata(
    pool: &PgPool,
    caller: &Caller,
    project: &StoredProject,
    operation: &str,
    key: &str,
    value: Option<&str>,
) -> ApiResult<()> {
    let mut tx = pool.begin().await?;
    let description = match value {
        Some(value) => {
            let entry = BTreeMap::from([(key.to_owned(), value.to_owned())]);
            set_metadata(&mut *tx, project.id, &entry).await?;
            format!("set {key}={value} on project {}", project.name)
        }
        None => {
            delete_metadata(&mut *tx, project.id, key).await?;
            format!("removed {key} from project {}", project.name)
        }
    };
    audit::record(
        &mut *tx,
        &entry(
            caller,
            project.id,
            operation,
            "project_metadata",
            key,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn metadata_not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("metadata {key} not found"))
}

/// Every metadata entry of a project.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/metadatas/", tag = "projectMetadata",
    operation_id = "listProjectMetadatas",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The metadata map", body = BTreeMap<String, String>),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read metadata", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn list_metadata(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "metadata", "read")?;
    Ok(HttpResponse::Ok().json(&access.project.metadata))
}

/// Add one metadata entry (409 if the key is already set).
#[utoipa::path(
    post, path = "/projects/{project_name_or_id}/metadatas/", tag = "projectMetadata",
    operation_id = "addProjectMetadatas",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = BTreeMap<String, String>,
    responses(
        (status = 200, description = "Added"),
        (status = 400, description = "Not exactly one known key with a valid value", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create metadata", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
        (status = 409, description = "The key is already set", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn add_metadata(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Json<BTreeMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "metadata", "create")?;
    let (key, value) = one_pair(body.into_inner())?;
    if access.project.metadata.contains_key(&key) {
        return Err(ApiError::conflict(format!(
            "metadata {key} already exists; update it instead"
        )));
    }
    write_metadata(
        &pool,
        &caller,
        &access.project,
        "create",
        &key,
        Some(&value),
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// One metadata entry, as a one-entry map.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    operation_id = "getProjectMetadata",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "Metadata key"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The entry", body = BTreeMap<String, String>),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read metadata", body = ErrorsBody),
        (status = 404, description = "No such project or key", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn get_metadata(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, key) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "metadata", "read")?;
    let value = access
        .project
        .metadata
        .get(&key)
        .ok_or_else(|| metadata_not_found(&key))?;
    Ok(HttpResponse::Ok().json(BTreeMap::from([(key.as_str(), value.as_str())])))
}

/// Change one metadata entry; the body is `{"<meta_name>": "<value>"}`.
#[utoipa::path(
    put, path = "/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    operation_id = "updateProjectMetadata",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "Metadata key"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = BTreeMap<String, String>,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad value, or the body lacks the key", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update metadata", body = ErrorsBody),
        (status = 404, description = "No such project or key", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_metadata(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Json<BTreeMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let (project, key) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "metadata", "update")?;
    let mut body = body.into_inner();
    let Some(value) = body.remove(&key) else {
        return Err(ApiError::bad_request(format!(
            "the body must set {key}, as {{\"{key}\": \"<value>\"}}"
        )));
    };
    let (key, value) = one_pair(BTreeMap::from([(key, value)]))?;
    if !access.project.metadata.contains_key(&key) {
        return Err(metadata_not_found(&key));
    }
    write_metadata(
        &pool,
        &caller,
        &access.project,
        "update",
        &key,
        Some(&value),
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// Remove one metadata entry.
#[utoipa::path(
    delete, path = "/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    operation_id = "deleteProjectMetadata",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "Metadata key"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Removed"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete metadata", body = ErrorsBody),
        (status = 404, description = "No such project or key", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_metadata_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, key) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "metadata", "delete")?;
    if !access.project.metadata.contains_key(&key) {
        return Err(metadata_not_found(&key));
    }
    write_metadata(&pool, &caller, &access.project, "delete", &key, None).await?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_from_requests_is_cleaned_like_harbor() {
        let cleaned = clean_metadata(BTreeMap::from([
            ("public".to_owned(), "true".to_owned()),
            ("severity".to_owned(), "HIGH".to_owned()),
            ("proxy_speed_kb".to_owned(), "10".to_owned()),
            ("retention_id".to_owned(), String::new()),
        ]))
        .unwrap();
        assert_eq!(
            cleaned,
            BTreeMap::from([
                ("public".to_owned(), "true".to_owned()),
                ("severity".to_owned(), "high".to_owned()),
            ])
        );
        assert!(clean_metadata(BTreeMap::from([("public".into(), "yes".into())])).is_err());
        assert!(clean_metadata(BTreeMap::from([("retention_id".into(), "3".into())])).is_err());
        assert!(clean_metadata(BTreeMap::from([("colour".into(), "red".into())])).is_err());
    }

    #[test]
    fn one_pair_normalises_booleans() {
        let pair = one_pair(BTreeMap::from([("auto_scan".into(), "True".into())])).unwrap();
        assert_eq!(pair, ("auto_scan".to_owned(), "true".to_owned()));
        assert!(one_pair(BTreeMap::new()).is_err());
        assert!(
            one_pair(BTreeMap::from([
                ("auto_scan".into(), "true".into()),
                ("public".into(), "true".into())
            ]))
            .is_err()
        );
    }
}
