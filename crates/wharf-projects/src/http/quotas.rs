//! `/quotas`: project storage quotas, as Harbor's `quota` API. System
//! resources: reading and listing need `quota:read`/`quota:list`, changing a
//! limit `quota:update`, which only system administrators (and system robots
//! granted it) hold. Project members see their project's quota in the
//! project summary instead.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::query::parse_sort;
use super::{ApiError, ApiResult, PageParams, paginated, require_system};
use crate::Listing;
use crate::audit::{self, AuditEntry};
use crate::quotas::{
    Quota as StoredQuota, QuotaQuery, QuotaSort, get_quota, human_size, list_quotas, set_hard_limit,
};
use crate::security::Caller;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_quotas_handler, get_quota_handler, update_quota),
    components(schemas(Quota, QuotaUpdateReq))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/quotas").route(web::get().to(list_quotas_handler)))
        .service(
            resource("/quotas/{id}")
                .route(web::get().to(get_quota_handler))
                .route(web::put().to(update_quota)),
        );
}

/// The only resource a quota limits.
const STORAGE: &str = "storage";

/// A quota as Harbor shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub id: i64,
    /// What the quota limits: `{"id", "name", "owner_name"}` of the project.
    #[schema(value_type = Object)]
    #[serde(rename = "ref")]
    pub reference: serde_json::Value,
    /// Hard limits by resource (`storage`, bytes; -1 unlimited).
    pub hard: BTreeMap<String, i64>,
    /// Usage by resource (`storage`, bytes).
    pub used: BTreeMap<String, i64>,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<StoredQuota> for Quota {
    fn from(q: StoredQuota) -> Self {
        Quota {
            id: q.id,
            reference: serde_json::json!({
                "id": q.project_id,
                "name": q.project_name,
                "owner_name": q.owner_name,
            }),
            hard: BTreeMap::from([(STORAGE.to_owned(), q.hard)]),
            used: BTreeMap::from([(STORAGE.to_owned(), q.used)]),
            creation_time: q.created_at,
            update_time: q.updated_at,
        }
    }
}

/// What `PUT /quotas/{id}` takes.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct QuotaUpdateReq {
    /// New hard limits by resource: `{"storage": <bytes or -1>}`.
    #[serde(default)]
    pub hard: Option<BTreeMap<String, i64>>,
}

/// Query of `GET /quotas`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuotasParams {
    /// The kind of thing limited: only `project` exists.
    pub reference: Option<String>,
    /// The project id.
    pub reference_id: Option<String>,
    /// `hard.storage`, `used.storage`, `creation_time`, `update_time`; `-`
    /// for descending.
    pub sort: Option<String>,
}

/// Every project's quota (system administrators).
#[utoipa::path(
    get, path = "/quotas", tag = "quota", operation_id = "listQuotas",
    params(
        ListQuotasParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of quotas; X-Total-Count and Link headers", body = [Quota]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list quotas", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn list_quotas_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListQuotasParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "quota", "list")?;
    let page = paging.page()?;
    let sort = parse_sort(
        params.sort.as_deref(),
        &[
            ("hard.storage", QuotaSort::Hard),
            ("used.storage", QuotaSort::Used),
            ("creation_time", QuotaSort::CreationTime),
            ("update_time", QuotaSort::UpdateTime),
        ],
    )?;
    // Projects are the only thing with quotas: any other reference has none.
    if params
        .reference
        .as_deref()
        .is_some_and(|r| !r.is_empty() && r != "project")
    {
        let empty: Listing<StoredQuota> = Listing {
            items: Vec::new(),
            total: 0,
        };
        return Ok(paginated(&req, empty, page, Quota::from));
    }
    let project_id = match params.reference_id.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("reference_id must be a project id, not {text:?}"))
        })?),
    };
    let listing = list_quotas(
        pool.get_ref(),
        &QuotaQuery {
            project_id,
            sort,
            page,
        },
    )
    .await?;
    Ok(paginated(&req, listing, page, Quota::from))
}

fn quota_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("quota {id} not found"))
}

/// One quota (system administrators).
#[utoipa::path(
    get, path = "/quotas/{id}", tag = "quota", operation_id = "getQuota",
    params(("id" = i64, Path, description = "Quota id")),
    responses(
        (status = 200, description = "The quota", body = Quota),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read quotas", body = ErrorsBody),
        (status = 404, description = "No such quota", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn get_quota_handler(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "quota", "read")?;
    let id = path.into_inner();
    let quota = match get_quota(pool.get_ref(), id).await {
        Err(crate::Error::NotFound) => return Err(quota_not_found(id)),
        other => other?,
    };
    Ok(HttpResponse::Ok().json(Quota::from(quota)))
}

/// The new storage limit in a quota update, checked as Harbor checks it.
fn storage_limit_of(body: QuotaUpdateReq) -> ApiResult<i64> {
    let hard = body
        .hard
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request("hard required in body"))?;
    if let Some(other) = hard.keys().find(|k| *k != STORAGE) {
        return Err(ApiError::bad_request(format!(
            "resource {other} not support"
        )));
    }
    let limit = hard[STORAGE];
    crate::quotas::check_hard_limit(limit)?;
    Ok(limit)
}

/// Change a quota's hard limit (system administrators). Lowering it below
/// the usage is allowed: the project then takes no new bytes until it
/// shrinks, as in Harbor.
#[utoipa::path(
    put, path = "/quotas/{id}", tag = "quota", operation_id = "updateQuota",
    params(("id" = i64, Path, description = "Quota id")),
    request_body = QuotaUpdateReq,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "No hard limits, an unknown resource or a bad value", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update quotas", body = ErrorsBody),
        (status = 404, description = "No such quota", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_quota(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<QuotaUpdateReq>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "quota", "update")?;
    let id = path.into_inner();
    let limit = storage_limit_of(body.into_inner())?;
    let mut tx = pool.begin().await?;
    let quota = match get_quota(&mut *tx, id).await {
        Err(crate::Error::NotFound) => return Err(quota_not_found(id)),
        other => other?,
    };
    set_hard_limit(&mut tx, quota.project_id, limit).await?;
    let shown = if limit == crate::quotas::UNLIMITED {
        "unlimited".to_owned()
    } else {
        format!("{} ({limit} B)", human_size(limit))
    };
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: Some(quota.project_id),
            username: caller.principal.audit_name(),
            operation: "update",
            description: &format!(
                "set the storage limit of project {} to {shown}",
                quota.project_name
            ),
            success: true,
            resource_type: "quota",
            resource: &quota.project_name,
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(hard: Option<&[(&str, i64)]>) -> QuotaUpdateReq {
        QuotaUpdateReq {
            hard: hard.map(|h| h.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
        }
    }

    #[test]
    fn updates_are_checked_like_harbor() {
        assert_eq!(
            storage_limit_of(req(Some(&[("storage", 1024)]))).unwrap(),
            1024
        );
        assert_eq!(storage_limit_of(req(Some(&[("storage", -1)]))).unwrap(), -1);
        let message = |r| storage_limit_of(r).unwrap_err().message;
        assert_eq!(message(req(None)), "hard required in body");
        assert_eq!(message(req(Some(&[]))), "hard required in body");
        assert_eq!(
            message(req(Some(&[("storage", 1), ("count", 3)]))),
            "resource count not support"
        );
        assert!(message(req(Some(&[("storage", 0)]))).contains("invalid storage limit"));
        assert!(message(req(Some(&[("storage", -5)]))).contains("invalid storage limit"));
    }
}
