//! `/search`: projects and repositories by name, as Harbor's `search` API.
//!
//! The projects are those `GET /projects` would list to the caller (the same
//! visibility code) whose name contains `q`; the repositories are those, in
//! any project the caller may see, whose full name contains `q` (so
//! `q=library` finds every repository of `library`).

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::projects::{Project, projects_json, visible_projects};
use super::{ApiError, ApiResult};
use crate::Page;
use crate::artifacts::{RepositorySearch, RepositorySort, search_repositories};
use crate::projects::Project as StoredProject;
use crate::security::Caller;
use crate::users::TextMatch;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(search), components(schemas(Search, SearchRepository)))]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/search").route(web::get().to(search)));
}

/// Query of `GET /search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Text to find in project and repository names.
    pub q: Option<String>,
}

/// Harbor's `Search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Search {
    /// Projects whose name contains the text.
    pub project: Vec<Project>,
    /// Repositories whose name contains the text.
    pub repository: Vec<SearchRepository>,
}

/// Harbor's `SearchRepository`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchRepository {
    pub project_id: i64,
    pub project_name: String,
    pub project_public: bool,
    /// The full name (`library/app`).
    pub repository_name: String,
    /// How often its artifacts were pulled.
    pub pull_count: i64,
    /// Artifacts in the repository, counted as its artifact list counts them.
    pub artifact_count: i64,
}

/// Projects and repositories the caller may see whose names contain `q`.
#[utoipa::path(
    get, path = "/search", tag = "search", operation_id = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "What was found", body = Search),
        (status = 400, description = "No q given", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn search(
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<SearchParams>,
) -> ApiResult<HttpResponse> {
    let Some(text) = params.q.as_deref().map(str::trim) else {
        return Err(ApiError::bad_request("the q parameter is required"));
    };
    let visible = visible_projects(&pool, &caller.principal, None).await?;
    let by_id: HashMap<i64, &StoredProject> = visible.iter().map(|p| (p.id, p)).collect();
    let mut search = RepositorySearch {
        project_ids: Some(by_id.keys().copied().collect()),
        name: Some(TextMatch::Contains(text.to_owned())),
        sort: vec![(RepositorySort::Name, false)],
        page: Page {
            page: 1,
            page_size: Page::MAX_SIZE,
        },
    };
    let mut repository = Vec::new();
    loop {
        let listing = search_repositories(&pool, &search).await?;
        let last = listing.items.len() < Page::MAX_SIZE as usize;
        for found in listing.items {
            let Some(project) = by_id.get(&found.project_id) else {
                continue;
            };
            repository.push(SearchRepository {
                project_id: project.id,
                project_name: project.name.clone(),
                project_public: project.is_public(),
                repository_name: found.name,
                pull_count: found.pull_count,
                artifact_count: found.artifact_count,
            });
        }
        if last || i64::try_from(repository.len()).unwrap_or(i64::MAX) >= listing.total {
            break;
        }
        search.page.page += 1;
    }
    drop(by_id);
    let lowered = text.to_lowercase();
    let matching = visible
        .into_iter()
        .filter(|p| p.name.to_lowercase().contains(&lowered))
        .collect();
    let project = projects_json(&pool, &caller.principal, matching).await?;
    Ok(HttpResponse::Ok().json(Search {
        project,
        repository,
    }))
}
