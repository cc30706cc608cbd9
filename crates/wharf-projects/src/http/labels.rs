//! `/labels` and the labels of artifacts, as Harbor's `label` API and its
//! artifact `addLabel`/`removeLabel`.
//!
//! Global labels (scope `g`) are created, changed and deleted by system
//! administrators (and robots granted the system `label` actions); anyone
//! signed in may read them. Project labels (scope `p`) follow the project's
//! roles: `label:create/update/delete` for project admins and maintainers,
//! `label:read/list` for developers and guests too (and for every visitor of
//! a public project). A project label in a project the caller may not see
//! answers 404, exactly like one that does not exist.
//!
//! Attaching and detaching needs `artifact-label:create/delete` in the
//! artifact's project. A project label attaches only to artifacts of its own
//! project; any other project's label is "not found" there, as in Harbor.
//!
//! Every change is written to the audit log in its own transaction.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wharf_oci::Reference;

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query, parse_sort, text_filter};
use super::repositories::{project_named, repository_name};
use super::{
    ApiError, ApiResult, PageParams, created_at, paginated, require, require_authenticated,
    require_system,
};
use crate::artifacts::{Artifact, find_artifact};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::labels::{
    self as domain, AttachError, Label as StoredLabel, LabelQuery, LabelScope, LabelSort, LabelText,
};
use crate::projects::get_project;
use crate::security::{Caller, ProjectAccess};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_labels,
        create_label,
        get_label,
        update_label,
        delete_label,
        add_artifact_label,
        remove_artifact_label
    ),
    components(schemas(Label, LabelReq))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/labels")
            .route(web::get().to(list_labels))
            .route(web::post().to(create_label)),
    )
    .service(
        resource("/labels/{label_id}")
            .route(web::get().to(get_label))
            .route(web::put().to(update_label))
            .route(web::delete().to(delete_label)),
    )
    .service(
        resource(
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels",
        )
        .route(web::post().to(add_artifact_label)),
    )
    .service(
        resource(
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}",
        )
        .route(web::delete().to(remove_artifact_label)),
    );
}

/// A label as Harbor shows it (schema `Label`). Artifact listings embed it
/// too.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Label {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// A colour for the console, usually `#RRGGBB`.
    pub color: String,
    /// `g` (global) or `p` (project).
    pub scope: String,
    /// The project of a project label; 0 for a global label.
    pub project_id: i64,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Always false: deleted labels are gone.
    pub deleted: bool,
}

impl From<StoredLabel> for Label {
    fn from(label: StoredLabel) -> Self {
        Label {
            id: label.id,
            scope: label.scope.code().to_owned(),
            project_id: label.scope.project_id().unwrap_or(0),
            name: label.name,
            description: label.description,
            color: label.color,
            creation_time: label.created_at,
            update_time: label.updated_at,
            deleted: false,
        }
    }
}

/// The body of `POST /labels`, `PUT /labels/{id}` and `addLabel` (Harbor's
/// `Label`; each operation reads the fields it needs and ignores the rest).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct LabelReq {
    /// For `addLabel`: the label to attach.
    pub id: Option<i64>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    /// For `POST /labels`: `g` or `p`.
    pub scope: Option<String>,
    /// For `POST /labels` with scope `p`: the project.
    pub project_id: Option<i64>,
}

impl LabelReq {
    fn text(&self) -> LabelText {
        LabelText {
            name: self.name.clone().unwrap_or_default(),
            description: self.description.clone().unwrap_or_default(),
            color: self.color.clone().unwrap_or_default(),
        }
    }
}

/// Query of `GET /labels`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListLabelsParams {
    /// `g` or `p`; without it, `p` when `project_id` is given, else `g`.
    pub scope: Option<String>,
    /// The project whose labels to list (scope `p`).
    pub project_id: Option<i64>,
    /// Only labels whose name contains this text.
    pub name: Option<String>,
    /// Harbor's query: `name` (exact or `~fuzzy`), `id` (exact or `{union}`).
    pub q: Option<String>,
    /// `name`, `id`, `creation_time`, `update_time`, `-` for descending.
    pub sort: Option<String>,
}

// ---------------------------------------------------------------------------
// Helpers.

fn label_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("label {id} not found"))
}

/// The live project `id` and the caller's access to it; a project the
/// caller may not see is `not_found`.
async fn project_by_id(
    pool: &PgPool,
    caller: &Caller,
    id: i64,
    not_found: impl FnOnce() -> ApiError,
) -> ApiResult<ProjectAccess> {
    let project = match get_project(pool, id).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, &caller.principal, project).await?;
    if !access.can_see() {
        return Err(not_found());
    }
    Ok(access)
}

/// Check `action` on the label: a system grant for a global label, the
/// project role for a project label. Returns the project access for a
/// project label.
async fn require_on_label(
    pool: &PgPool,
    caller: &Caller,
    label: &StoredLabel,
    action: &str,
) -> ApiResult<Option<ProjectAccess>> {
    match label.scope {
        LabelScope::Global => {
            if action == "read" {
                require_authenticated(caller)?;
            } else {
                require_system(caller, "label", action)?;
            }
            Ok(None)
        }
        LabelScope::Project(project_id) => {
            let id = label.id;
            let access = project_by_id(pool, caller, project_id, || label_not_found(id)).await?;
            require(caller, &access, "label", action)?;
            Ok(Some(access))
        }
    }
}

async fn load_label(pool: &PgPool, id: i64) -> ApiResult<StoredLabel> {
    match domain::get_label(pool, id).await {
        Ok(label) => Ok(label),
        Err(Error::NotFound) => Err(label_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

fn describe_scope(label: &StoredLabel, access: Option<&ProjectAccess>) -> String {
    match access {
        Some(access) => format!("label {} of project {}", label.name, access.project.name),
        None => format!("global label {}", label.name),
    }
}

fn label_entry<'a>(
    caller: &'a Caller,
    label: &'a StoredLabel,
    operation: &'a str,
    description: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: label.scope.project_id(),
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type: "label",
        resource: &label.name,
        client_addr: caller.client_addr.as_deref(),
    }
}

fn id_terms(query: &Query) -> ApiResult<Option<Vec<i64>>> {
    let parse = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| ApiError::bad_request("query key id takes numbers"))
    };
    match query.get("id") {
        None => Ok(None),
        Some(Matcher::Exact(v)) => Ok(Some(vec![parse(v)?])),
        Some(Matcher::Union(vs)) => vs
            .iter()
            .map(|v| parse(v))
            .collect::<ApiResult<_>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(
            "query key id supports exact (id=1) or union (id={1 2}) matching",
        )),
    }
}

fn parse_scope(scope: Option<&str>) -> ApiResult<Option<&'static str>> {
    match scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("g") => Ok(Some("g")),
        Some("p") => Ok(Some("p")),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid label scope {other:?}: use g (global) or p (project)"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Label handlers.

/// The labels of one scope: global labels (anyone signed in), or the labels
/// of one project (`label:list` there).
#[utoipa::path(
    get, path = "/labels", tag = "label", operation_id = "ListLabels",
    params(
        ListLabelsParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of labels; X-Total-Count and Link headers", body = [Label]),
        (status = 400, description = "Bad scope, query or sort; scope p without project_id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list the project's labels", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_labels(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListLabelsParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["name", "id"])?;
    let project_id = params.project_id.filter(|&id| id != 0);
    let code = parse_scope(params.scope.as_deref())?.unwrap_or(if project_id.is_some() {
        "p"
    } else {
        "g"
    });
    let scope = if code == "g" {
        require_authenticated(&caller)?;
        LabelScope::Global
    } else {
        let Some(id) = project_id else {
            return Err(ApiError::bad_request(
                "project_id is required to list project labels",
            ));
        };
        let access = project_by_id(&pool, &caller, id, || {
            ApiError::not_found(format!("project {id} not found"))
        })
        .await?;
        require(&caller, &access, "label", "list")?;
        LabelScope::Project(access.project.id)
    };
    let name = match params.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => Some(crate::users::TextMatch::Contains(name.to_owned())),
        None => text_filter(&query, "name")?,
    };
    let search = LabelQuery {
        scope,
        name,
        ids: id_terms(&query)?,
        sort: parse_sort(
            params.sort.as_deref(),
            &[
                ("id", LabelSort::Id),
                ("name", LabelSort::Name),
                ("creation_time", LabelSort::CreationTime),
                ("update_time", LabelSort::UpdateTime),
            ],
        )?,
        page,
    };
    let listing = domain::list_labels(pool.get_ref(), &search).await?;
    Ok(paginated(&req, listing, page, Label::from))
}

/// Create a global label (system administrators) or a project label
/// (`label:create` in the project).
#[utoipa::path(
    post, path = "/labels", tag = "label", operation_id = "CreateLabel",
    request_body = LabelReq,
    responses(
        (status = 201, description = "Created; Location is /api/v2.0/labels/{id}"),
        (status = 400, description = "Bad name, colour or scope; scope p without project_id", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create labels there", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
        (status = 409, description = "The name is taken in the scope", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_label(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<LabelReq>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let (scope, access) = match parse_scope(body.scope.as_deref())? {
        Some("g") => {
            require_system(&caller, "label", "create")?;
            (LabelScope::Global, None)
        }
        Some(_) => {
            let id = body.project_id.unwrap_or(0);
            if id <= 0 {
                return Err(ApiError::bad_request(
                    "a project label needs the project_id of its project",
                ));
            }
            require_authenticated(&caller)?;
            let access = project_by_id(&pool, &caller, id, || {
                ApiError::not_found(format!("project {id} not found"))
            })
            .await?;
            require(&caller, &access, "label", "create")?;
            (LabelScope::Project(id), Some(access))
        }
        None => {
            return Err(ApiError::bad_request(
                "the label scope is required: g (global) or p (project)",
            ));
        }
    };
    let mut tx = pool.begin().await?;
    let label = match domain::create_label(&mut *tx, &body.text(), scope).await {
        Err(Error::NotFound) => {
            return Err(ApiError::not_found(format!(
                "project {} not found",
                scope.project_id().unwrap_or_default()
            )));
        }
        other => other?,
    };
    let description = format!(
        "created {} (id {})",
        describe_scope(&label, access.as_ref()),
        label.id
    );
    audit::record(
        &mut *tx,
        &label_entry(&caller, &label, "create", &description),
    )
    .await?;
    tx.commit().await?;
    Ok(created_at(&req, label.id))
}

/// One label.
#[utoipa::path(
    get, path = "/labels/{label_id}", tag = "label", operation_id = "GetLabelByID",
    params(("label_id" = i64, Path, description = "Label id")),
    responses(
        (status = 200, description = "The label", body = Label),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read the project's labels", body = ErrorsBody),
        (status = 404, description = "No such label, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_label(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let label = load_label(&pool, *path).await?;
    require_on_label(&pool, &caller, &label, "read").await?;
    Ok(HttpResponse::Ok().json(Label::from(label)))
}

/// Change a label's name, description and colour (its scope stays).
#[utoipa::path(
    put, path = "/labels/{label_id}", tag = "label", operation_id = "UpdateLabel",
    params(("label_id" = i64, Path, description = "Label id")),
    request_body = LabelReq,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad name or colour", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update the label", body = ErrorsBody),
        (status = 404, description = "No such label, or not visible to the caller", body = ErrorsBody),
        (status = 409, description = "The name is taken in the scope", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_label(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<LabelReq>,
) -> ApiResult<HttpResponse> {
    let id = *path;
    let before = load_label(&pool, id).await?;
    let access = require_on_label(&pool, &caller, &before, "update").await?;
    let mut tx = pool.begin().await?;
    let label = match domain::update_label(&mut *tx, id, &body.text()).await {
        Err(Error::NotFound) => return Err(label_not_found(id)),
        other => other?,
    };
    let renamed = if before.name == label.name {
        String::new()
    } else {
        format!(", renamed from {}", before.name)
    };
    let description = format!(
        "updated {} (id {id}){renamed}",
        describe_scope(&label, access.as_ref())
    );
    audit::record(
        &mut *tx,
        &label_entry(&caller, &label, "update", &description),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a label; it is detached from every artifact.
#[utoipa::path(
    delete, path = "/labels/{label_id}", tag = "label", operation_id = "DeleteLabel",
    params(("label_id" = i64, Path, description = "Label id")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete the label", body = ErrorsBody),
        (status = 404, description = "No such label, or not visible to the caller", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_label(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = *path;
    let label = load_label(&pool, id).await?;
    let access = require_on_label(&pool, &caller, &label, "delete").await?;
    let mut tx = pool.begin().await?;
    let deleted = match domain::delete_label(&mut *tx, id).await {
        Err(Error::NotFound) => return Err(label_not_found(id)),
        other => other?,
    };
    let description = format!(
        "deleted {} (id {id}), detached from {} artifact(s)",
        describe_scope(&deleted.label, access.as_ref()),
        deleted.detached
    );
    audit::record(
        &mut *tx,
        &label_entry(&caller, &deleted.label, "delete", &description),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

// ---------------------------------------------------------------------------
// Labels on artifacts.

/// Path of the artifact label routes.
#[derive(Debug, Deserialize)]
struct ArtifactPath {
    project_name: String,
    repository_name: String,
    reference: String,
}

/// Path of `removeLabel`.
#[derive(Debug, Deserialize)]
struct ArtifactLabelPath {
    project_name: String,
    repository_name: String,
    reference: String,
    label_id: i64,
}

/// The artifact an artifact-label path names, once the caller may `action`
/// `artifact-label` in its project; 404 when the repository lacks it.
async fn labelled_artifact(
    pool: &PgPool,
    caller: &Caller,
    project: &str,
    repository: &str,
    reference: &str,
    action: &str,
) -> ApiResult<(ProjectAccess, Artifact)> {
    let access = project_named(pool, caller, project).await?;
    require(caller, &access, "artifact-label", action)?;
    let name = repository_name(&access.project.name, repository)?;
    let parsed = Reference::parse(reference)
        .map_err(|e| ApiError::bad_request(format!("invalid reference {reference:?}: {e}")))?;
    match find_artifact(pool, &name, &parsed).await {
        Ok(artifact) => Ok((access, artifact)),
        Err(Error::NotFound) => Err(ApiError::not_found(format!(
            "artifact {name} {reference} not found"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn artifact_entry<'a>(
    caller: &'a Caller,
    project_id: i64,
    operation: &'a str,
    resource: &'a str,
    description: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: Some(project_id),
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type: "artifact-label",
        resource,
        client_addr: caller.client_addr.as_deref(),
    }
}

/// Attach a label to an artifact (`artifact-label:create`). Only the
/// label's `id` is read from the body.
#[utoipa::path(
    post,
    path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels",
    tag = "artifact", operation_id = "addLabel",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project; a '/' in it encoded twice (%252F)"),
        ("reference" = String, Path, description = "Tag or digest"),
    ),
    request_body = LabelReq,
    responses(
        (status = 200, description = "Attached"),
        (status = 400, description = "No label id in the body", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to label artifacts in the project", body = ErrorsBody),
        (status = 404, description = "No such project, artifact or label (a project label of another project is not found)", body = ErrorsBody),
        (status = 409, description = "The label is already attached", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn add_artifact_label(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<ArtifactPath>,
    body: web::Json<LabelReq>,
) -> ApiResult<HttpResponse> {
    let (access, found) = labelled_artifact(
        &pool,
        &caller,
        &path.project_name,
        &path.repository_name,
        &path.reference,
        "create",
    )
    .await?;
    let Some(label_id) = body.id.filter(|&id| id > 0) else {
        return Err(ApiError::bad_request(
            "the id of the label to attach is required",
        ));
    };
    let resource = format!("{}@{}", found.repository_name, found.digest);
    let mut tx = pool.begin().await?;
    let label = match domain::attach_label(&mut *tx, found.id, label_id).await {
        Ok(label) => label,
        Err(AttachError::ArtifactNotFound) => {
            return Err(ApiError::not_found(format!(
                "artifact {resource} not found"
            )));
        }
        Err(AttachError::LabelNotFound) => {
            return Err(ApiError::not_found(format!(
                "label {label_id} not found in project {}",
                access.project.name
            )));
        }
        Err(AttachError::AlreadyAttached) => {
            return Err(ApiError::conflict(format!(
                "label {label_id} is already attached to {resource}"
            )));
        }
        Err(AttachError::Other(e)) => return Err(e.into()),
    };
    let description = format!("added label {} (id {label_id}) to {resource}", label.name);
    audit::record(
        &mut *tx,
        &artifact_entry(
            &caller,
            access.project.id,
            "create",
            &resource,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Detach a label from an artifact (`artifact-label:delete`).
#[utoipa::path(
    delete,
    path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}",
    tag = "artifact", operation_id = "removeLabel",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project; a '/' in it encoded twice (%252F)"),
        ("reference" = String, Path, description = "Tag or digest"),
        ("label_id" = i64, Path, description = "The label to detach"),
    ),
    responses(
        (status = 200, description = "Detached"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to label artifacts in the project", body = ErrorsBody),
        (status = 404, description = "No such project or artifact, or the label is not attached", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn remove_artifact_label(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<ArtifactLabelPath>,
) -> ApiResult<HttpResponse> {
    let (access, found) = labelled_artifact(
        &pool,
        &caller,
        &path.project_name,
        &path.repository_name,
        &path.reference,
        "delete",
    )
    .await?;
    let resource = format!("{}@{}", found.repository_name, found.digest);
    let label_id = path.label_id;
    let mut tx = pool.begin().await?;
    let label = match domain::detach_label(&mut *tx, found.id, label_id).await {
        Err(Error::NotFound) => {
            return Err(ApiError::not_found(format!(
                "label {label_id} is not attached to {resource}"
            )));
        }
        other => other?,
    };
    let description = format!(
        "removed label {} (id {label_id}) from {resource}",
        label.name
    );
    audit::record(
        &mut *tx,
        &artifact_entry(
            &caller,
            access.project.id,
            "delete",
            &resource,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}
