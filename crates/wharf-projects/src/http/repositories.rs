//! `/repositories` and `/projects/{project_name}/repositories`: Harbor's
//! `repository` API over the registry's repositories.
//!
//! A repository name inside a path is the part after the project, URL-encoded
//! twice when it contains `/` (`a/b` → `a%252Fb`), as Harbor requires; a
//! name encoded once (`a%2Fb`) is accepted too. Deleting a repository
//! deletes each of its artifacts through the registry (admission, event and
//! audit entry per artifact, exactly as `/v2` deletes), then the repository.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wharf_oci::{Digest, ErrorCode, Reference, RepositoryName};
use wharf_registry::{Registry, RegistryError};

use super::error::{ErrorsBody, resource};
use super::query::{Query, parse_sort, text_filter};
use super::{ApiError, ApiResult, PageParams, paginated, require};
use crate::artifacts::{
    Repository as StoredRepository, RepositorySearch, RepositorySort, delete_empty_repository,
    get_repository, manifest_digests, search_repositories, set_repository_description,
};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::projects::get_project_by_name;
use crate::robots::PermissionKind;
use crate::security::{Caller, Principal, ProjectAccess};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_all_repositories,
        list_repositories,
        get_repository_handler,
        update_repository,
        delete_repository
    ),
    components(schemas(Repository))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/repositories").route(web::get().to(list_all_repositories)))
        .service(
            resource("/projects/{project_name}/repositories")
                .route(web::get().to(list_repositories)),
        )
        .service(
            resource("/projects/{project_name}/repositories/{repository_name}")
                .route(web::get().to(get_repository_handler))
                .route(web::put().to(update_repository))
                .route(web::delete().to(delete_repository)),
        );
}

// ---------------------------------------------------------------------------
// Shapes.

/// A repository as Harbor shows it.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Repository {
    pub id: i64,
    pub project_id: i64,
    /// The full name, `project/repo`.
    pub name: String,
    pub description: String,
    /// How many artifacts the repository lists.
    pub artifact_count: i64,
    /// How many times its artifacts were pulled.
    pub pull_count: i64,
    pub creation_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
}

impl From<StoredRepository> for Repository {
    fn from(r: StoredRepository) -> Self {
        Repository {
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            description: r.description,
            artifact_count: r.artifact_count,
            pull_count: r.pull_count,
            creation_time: Some(r.created_at),
            update_time: Some(r.updated_at),
        }
    }
}

/// Query of the repository listings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRepositoriesParams {
    /// Harbor's query: `name` (exact `name=a/b` or fuzzy `name=~b`).
    pub q: Option<String>,
    /// `name`, `creation_time`, `update_time`, `pull_count`,
    /// `artifact_count`, `id`; `-` for descending (default `-creation_time`).
    pub sort: Option<String>,
}

// ---------------------------------------------------------------------------
// Helpers shared with the artifact handlers.

/// The project named `name` (always a name on these paths, as in Harbor)
/// and what the caller may do in it; one the caller may not see is "not
/// found".
pub(super) async fn project_named(
    pool: &PgPool,
    caller: &Caller,
    name: &str,
) -> ApiResult<ProjectAccess> {
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

/// The full repository name from a project and a path segment that was
/// URL-encoded twice (one decoding is done by the router): `a%2Fb` → `a/b`.
pub(super) fn repository_name(project: &str, segment: &str) -> ApiResult<RepositoryName> {
    let decoded = percent_decode(segment)
        .ok_or_else(|| ApiError::bad_request(format!("bad repository name {segment:?}")))?;
    let full = format!("{project}/{decoded}");
    RepositoryName::parse(&full)
        .map_err(|e| ApiError::bad_request(format!("invalid repository name {full:?}: {e}")))
}

/// `%XX` escapes decoded (a `+` stays a `+`); `None` if the result is not UTF-8
/// or an escape is malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `a/b` with its slashes encoded as `%252F`, as Harbor's links write a
/// repository name inside a path.
pub(super) fn encode_repository(repository_in_project: &str) -> String {
    repository_in_project.replace('/', "%252F")
}

/// The registry's view of the caller, for its events and audit entries.
pub(super) fn registry_actor(caller: &Caller) -> wharf_registry::seams::Principal {
    wharf_registry::seams::Principal {
        name: caller.principal.name().map(str::to_owned),
        client_addr: caller.client_addr.clone(),
    }
}

/// The registry the gateway provides as app data (the API answers 500 and
/// logs why when it was not wired).
pub(super) fn registry(data: Option<web::Data<Registry>>) -> ApiResult<web::Data<Registry>> {
    data.ok_or_else(|| {
        tracing::error!(
            "the REST API was mounted without web::Data<Registry>: artifacts cannot be changed"
        );
        ApiError::internal()
    })
}

/// Harbor's answer to a registry error. `deleting` turns a policy refusal
/// (an immutable tag) into 412, as Harbor answers deletes; other refusals
/// (quota, immutability on a write) are 403 `DENIED`.
pub(super) fn registry_error(e: RegistryError, deleting: bool) -> ApiError {
    use actix_web::http::StatusCode;
    match e {
        RegistryError::Distribution(d) => match d.code {
            ErrorCode::ManifestUnknown | ErrorCode::NameUnknown | ErrorCode::BlobUnknown => {
                ApiError::not_found(d.message)
            }
            ErrorCode::ManifestBlobUnknown => ApiError::precondition(d.message),
            ErrorCode::Denied if deleting => ApiError::precondition(d.message),
            ErrorCode::Denied => ApiError::new(StatusCode::FORBIDDEN, "DENIED", d.message),
            ErrorCode::TooManyRequests => ApiError::too_many_requests(d.message),
            ErrorCode::Unauthorized => ApiError::unauthorized(d.message),
            _ => ApiError::bad_request(d.message),
        },
        other => {
            tracing::error!(error = %other, "registry error in the API");
            ApiError::internal()
        }
    }
}

/// The repository `name`, 404 in Harbor's words when there is none.
pub(super) async fn existing_repository(
    pool: &PgPool,
    name: &RepositoryName,
) -> ApiResult<StoredRepository> {
    match get_repository(pool, name.as_str()).await {
        Ok(repository) => Ok(repository),
        Err(Error::NotFound) => Err(ApiError::not_found(format!("repository {name} not found"))),
        Err(e) => Err(e.into()),
    }
}

fn sort_keys() -> [(&'static str, RepositorySort); 6] {
    [
        ("id", RepositorySort::Id),
        ("name", RepositorySort::Name),
        ("creation_time", RepositorySort::CreationTime),
        ("update_time", RepositorySort::UpdateTime),
        ("pull_count", RepositorySort::PullCount),
        ("artifact_count", RepositorySort::ArtifactCount),
    ]
}

/// The projects whose repositories `principal` may list: `None` for all
/// (system administrators, robots granted `repository:list` everywhere).
/// Everyone may list the repositories of public projects; every project
/// role includes `repository:list`; robots need the grant.
async fn listable_projects(pool: &PgPool, principal: &Principal) -> ApiResult<Option<Vec<i64>>> {
    if principal.is_sysadmin() {
        return Ok(None);
    }
    let (member, granted): (Option<i64>, Vec<i64>) = match principal {
        Principal::Anonymous => (None, Vec::new()),
        Principal::User(user) => (Some(user.id), Vec::new()),
        Principal::Robot { robot, .. } => {
            let grants = robot.permissions.iter().filter(|p| {
                p.kind == PermissionKind::Project
                    && p.access
                        .iter()
                        .any(|a| a.resource == "repository" && a.action == "list")
            });
            if grants.clone().any(|p| p.namespace == "*") {
                return Ok(None);
            }
            (None, grants.filter_map(|p| p.project_id).collect())
        }
    };
    let ids = sqlx::query_scalar(
        "SELECT p.id FROM projects p
           LEFT JOIN project_metadata m ON m.project_id = p.id AND m.name = 'public'
          WHERE NOT p.deleted
            AND (COALESCE(m.value = 'true', false) OR p.id = ANY($2)
                 OR EXISTS (SELECT 1 FROM project_members pm WHERE pm.project_id = p.id
                              AND pm.entity_type = 'u' AND pm.entity_id = $1))",
    )
    .bind(member)
    .bind(&granted)
    .fetch_all(pool)
    .await?;
    Ok(Some(ids))
}

// ---------------------------------------------------------------------------
// Handlers.

/// Every repository the caller may list (public projects, the projects it
/// is a member of or granted, or all for system administrators).
#[utoipa::path(
    get, path = "/repositories", tag = "repository", operation_id = "listAllRepositories",
    params(
        ListRepositoriesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of repositories; X-Total-Count and Link headers", body = [Repository]),
        (status = 400, description = "Bad query", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_all_repositories(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListRepositoriesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["name"])?;
    let search = RepositorySearch {
        project_ids: listable_projects(&pool, &caller.principal).await?,
        name: text_filter(&query, "name")?,
        sort: parse_sort(params.sort.as_deref(), &sort_keys())?,
        page,
    };
    let listing = search_repositories(&pool, &search).await?;
    Ok(paginated(&req, listing, page, Repository::from))
}

/// The repositories of a project.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories", tag = "repository",
    operation_id = "listRepositories",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ListRepositoriesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of repositories; X-Total-Count and Link headers", body = [Repository]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list repositories", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_repositories(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    params: web::Query<ListRepositoriesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let access = project_named(&pool, &caller, &path).await?;
    require(&caller, &access, "repository", "list")?;
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["name"])?;
    let search = RepositorySearch {
        project_ids: Some(vec![access.project.id]),
        name: text_filter(&query, "name")?,
        sort: parse_sort(params.sort.as_deref(), &sort_keys())?,
        page,
    };
    let listing = search_repositories(&pool, &search).await?;
    Ok(paginated(&req, listing, page, Repository::from))
}

/// One repository.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}", tag = "repository",
    operation_id = "getRepository",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
    ),
    responses(
        (status = 200, description = "The repository", body = Repository),
        (status = 400, description = "Bad repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read repositories", body = ErrorsBody),
        (status = 404, description = "No such project or repository", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_repository_handler(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, segment) = path.into_inner();
    let access = project_named(&pool, &caller, &project).await?;
    require(&caller, &access, "repository", "read")?;
    let name = repository_name(&access.project.name, &segment)?;
    let repository = existing_repository(&pool, &name).await?;
    Ok(HttpResponse::Ok().json(Repository::from(repository)))
}

/// Change a repository's description (the only field that can change).
#[utoipa::path(
    put, path = "/projects/{project_name}/repositories/{repository_name}", tag = "repository",
    operation_id = "updateRepository",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
    ),
    request_body = Repository,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad repository name or body", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update repositories", body = ErrorsBody),
        (status = 404, description = "No such project or repository", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_repository(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Json<Repository>,
) -> ApiResult<HttpResponse> {
    let (project, segment) = path.into_inner();
    let access = project_named(&pool, &caller, &project).await?;
    require(&caller, &access, "repository", "update")?;
    let name = repository_name(&access.project.name, &segment)?;
    let repository = existing_repository(&pool, &name).await?;
    let mut tx = pool.begin().await?;
    set_repository_description(&mut *tx, repository.id, &body.description).await?;
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: Some(access.project.id),
            username: caller.principal.audit_name(),
            operation: "update",
            description: "updated the description",
            success: true,
            resource_type: "repository",
            resource: name.as_str(),
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a repository: every artifact in it (each through the registry,
/// as `/v2` deletes), then the repository itself. 412 when an immutable
/// tag protects an artifact (those before it are deleted).
#[utoipa::path(
    delete, path = "/projects/{project_name}/repositories/{repository_name}", tag = "repository",
    operation_id = "deleteRepository",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Bad repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete repositories", body = ErrorsBody),
        (status = 404, description = "No such project or repository", body = ErrorsBody),
        (status = 412, description = "An immutable tag protects an artifact of the repository", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_repository(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, segment) = path.into_inner();
    let access = project_named(&pool, &caller, &project).await?;
    require(&caller, &access, "repository", "delete")?;
    let name = repository_name(&access.project.name, &segment)?;
    let repository = existing_repository(&pool, &name).await?;
    let registry = registry(registry_data)?;
    for digest in manifest_digests(pool.get_ref(), repository.id).await? {
        let Ok(digest) = Digest::parse(&digest) else {
            continue;
        };
        match registry
            .delete(&name, &Reference::Digest(digest), registry_actor(&caller))
            .await
        {
            Ok(()) => {}
            // Already gone with something deleted concurrently.
            Err(RegistryError::Distribution(d)) if d.code == ErrorCode::ManifestUnknown => {}
            Err(e) => return Err(registry_error(e, true)),
        }
    }
    let mut tx = pool.begin().await?;
    if delete_empty_repository(&mut tx, repository.id).await? {
        audit::record(
            &mut *tx,
            &AuditEntry {
                project_id: Some(access.project.id),
                username: caller.principal.audit_name(),
                operation: "delete",
                description: "deleted the repository",
                success: true,
                resource_type: "repository",
                resource: name.as_str(),
                client_addr: caller.client_addr.as_deref(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_decoded_once_more() {
        assert_eq!(repository_name("p", "a%2Fb").unwrap().as_str(), "p/a/b");
        assert_eq!(repository_name("p", "a/b").unwrap().as_str(), "p/a/b");
        assert_eq!(repository_name("p", "app").unwrap().as_str(), "p/app");
        assert!(repository_name("p", "a%2").is_err());
        assert!(repository_name("p", "A").is_err());
        assert!(repository_name("p", "a%252Fb").is_err());
        assert_eq!(encode_repository("a/b/c"), "a%252Fb%252Fc");
    }
}
