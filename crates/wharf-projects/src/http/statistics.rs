//! `/statistics`: how many projects and repositories there are and how much
//! storage they take, as Harbor's `statistic` API.
//!
//! As in Harbor, system administrators see everything: every count, the
//! totals, and the storage of the whole instance (each distinct blob once).
//! Everybody else signed in sees the public projects and the private
//! projects they may see (by the same rule as `GET /projects`), and zero for
//! the totals and the storage.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::projects::visible_projects;
use super::{ApiResult, require_authenticated};
use crate::projects::{repository_counts, total_blob_bytes};
use crate::security::Caller;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(get_statistic), components(schemas(Statistic)))]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/statistics").route(web::get().to(get_statistic)));
}

/// Harbor's `Statistic`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Statistic {
    pub private_project_count: i64,
    pub private_repo_count: i64,
    pub public_project_count: i64,
    pub public_repo_count: i64,
    /// Every project; system administrators only (0 for others).
    pub total_project_count: i64,
    /// Every repository; system administrators only (0 for others).
    pub total_repo_count: i64,
    /// Bytes of every distinct blob; system administrators only (0 for
    /// others).
    pub total_storage_consumption: i64,
}

/// Counts of the projects and repositories the caller may see.
#[utoipa::path(
    get, path = "/statistics", tag = "statistic", operation_id = "getStatistic",
    responses(
        (status = 200, description = "The counts", body = Statistic),
        (status = 401, description = "Not signed in", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn get_statistic(caller: Caller, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let visible = visible_projects(&pool, &caller.principal, None).await?;
    let names: Vec<String> = visible.iter().map(|p| p.name.clone()).collect();
    let counts = repository_counts(pool.get_ref(), &names).await?;
    let mut statistic = Statistic::default();
    for project in &visible {
        let repos = counts.get(&project.name).copied().unwrap_or(0);
        if project.is_public() {
            statistic.public_project_count += 1;
            statistic.public_repo_count += repos;
        } else {
            statistic.private_project_count += 1;
            statistic.private_repo_count += repos;
        }
    }
    if caller.principal.is_sysadmin() {
        statistic.total_project_count =
            statistic.public_project_count + statistic.private_project_count;
        statistic.total_repo_count = statistic.public_repo_count + statistic.private_repo_count;
        statistic.total_storage_consumption = total_blob_bytes(pool.get_ref()).await?;
    }
    Ok(HttpResponse::Ok().json(statistic))
}
