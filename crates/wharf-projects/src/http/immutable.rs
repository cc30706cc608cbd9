//! `/projects/{project_name_or_id}/immutabletagrules`: tag immutability
//! rules, as Harbor's `immutable` API. Project admins and maintainers hold
//! `immutable-tag:list/create/update/delete` (and robots granted them).
//!
//! Differences from Harbor, each refusing what Harbor would silently
//! ignore: a rule takes exactly one tag selector and one repository
//! selector (Harbor stores more but evaluates only the first), `action` and
//! `template` must be `immutable` and `immutable_template`, and an update
//! changes every field at once (Harbor applies only the `disabled` flag
//! when it changes).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query, parse_sort};
use super::{ApiError, ApiResult, PageParams, created_at, paginated, project_access, require};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::immutability::{
    ImmutableRule as StoredRule, RuleInput, RuleQuery, RuleSort, RuleSpec, create_rule,
    delete_rule, get_rule, list_rules, repository_decoration, tag_decoration, update_rule,
};
use crate::security::{Caller, ProjectAccess};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_rules_handler,
        create_rule_handler,
        update_rule_handler,
        delete_rule_handler
    ),
    components(schemas(ImmutableRule, ImmutableSelector))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project_name_or_id}/immutabletagrules")
            .route(web::get().to(list_rules_handler))
            .route(web::post().to(create_rule_handler)),
    )
    .service(
        resource("/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}")
            .route(web::put().to(update_rule_handler))
            .route(web::delete().to(delete_rule_handler)),
    );
}

/// A tag immutability rule as Harbor shows and takes it.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ImmutableRule {
    /// Ignored on creation; must be absent or equal the path's id on update.
    pub id: i64,
    pub priority: i32,
    /// A disabled rule protects nothing.
    pub disabled: bool,
    /// Always `immutable`.
    pub action: String,
    /// Always `immutable_template`.
    pub template: String,
    /// Free-form, kept as given.
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Exactly one: which tags (decoration `matches` or `excludes`).
    pub tag_selectors: Vec<ImmutableSelector>,
    /// `{"repository": [one selector]}`: which repositories, by their name
    /// inside the project (decoration `repoMatches` or `repoExcludes`).
    pub scope_selectors: BTreeMap<String, Vec<ImmutableSelector>>,
}

/// One selector: a doublestar pattern and whether it includes or excludes.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ImmutableSelector {
    /// Always `doublestar`.
    pub kind: String,
    pub decoration: String,
    /// `*`, `**`, `?`, `{a,b}` and `[a-z]` as in Harbor.
    pub pattern: String,
    /// Accepted and ignored (retention's `untagged` flag has no meaning here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extras: Option<String>,
}

fn selector_json(decoration: &str, pattern: &str) -> ImmutableSelector {
    ImmutableSelector {
        kind: "doublestar".into(),
        decoration: decoration.into(),
        pattern: pattern.into(),
        extras: None,
    }
}

impl From<StoredRule> for ImmutableRule {
    fn from(rule: StoredRule) -> Self {
        let spec = rule.spec;
        ImmutableRule {
            id: rule.id,
            priority: spec.priority,
            disabled: spec.disabled,
            action: "immutable".into(),
            template: "immutable_template".into(),
            params: match spec.params {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            tag_selectors: vec![selector_json(
                tag_decoration(spec.tag.decoration),
                spec.tag.pattern.as_str(),
            )],
            scope_selectors: BTreeMap::from([(
                "repository".to_owned(),
                vec![selector_json(
                    repository_decoration(spec.repository.decoration),
                    spec.repository.pattern.as_str(),
                )],
            )]),
        }
    }
}

fn triple(s: &ImmutableSelector) -> (&str, &str, &str) {
    (&s.kind, &s.decoration, &s.pattern)
}

fn spec_of(body: &ImmutableRule) -> ApiResult<RuleSpec> {
    let input = RuleInput {
        priority: body.priority,
        disabled: body.disabled,
        action: Some(body.action.as_str()),
        template: Some(body.template.as_str()),
        tag_selectors: body.tag_selectors.iter().map(triple).collect(),
        scope_selectors: body
            .scope_selectors
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(triple).collect()))
            .collect(),
        params: Some(serde_json::Value::Object(body.params.clone())),
    };
    Ok(RuleSpec::parse(&input)?)
}

fn rule_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("immutable rule {id} not found"))
}

async fn audited(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    access: &ProjectAccess,
    operation: &str,
    rule: &StoredRule,
) -> ApiResult<()> {
    let described = rule.describe();
    // create → created, update → updated, delete → deleted.
    let description = format!(
        "{operation}d immutable tag {described} in project {}",
        access.project.name
    );
    audit::record(
        &mut *tx,
        &AuditEntry {
            project_id: Some(access.project.id),
            username: caller.principal.audit_name(),
            operation,
            description: &description,
            success: true,
            resource_type: "immutable_tag_rule",
            resource: &format!("{}/{described}", access.project.name),
            client_addr: caller.client_addr.as_deref(),
        },
    )
    .await?;
    Ok(())
}

/// Query of `GET .../immutabletagrules`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRulesParams {
    /// Harbor's query: `disabled` (`true`/`false`).
    pub q: Option<String>,
    /// `id`, `priority`, `creation_time`, `update_time`; `-` for descending.
    pub sort: Option<String>,
}

/// The project's immutability rules.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/immutabletagrules", tag = "immutable",
    operation_id = "ListImmuRules",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        ListRulesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of rules; X-Total-Count and Link headers", body = [ImmutableRule]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list the rules", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_rules_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    params: web::Query<ListRulesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "immutable-tag", "list")?;
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["disabled"])?;
    let disabled = match query.get("disabled") {
        None => None,
        Some(Matcher::Exact(v)) if v == "true" || v == "1" => Some(true),
        Some(Matcher::Exact(v)) if v == "false" || v == "0" => Some(false),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key disabled must be exactly true or false",
            ));
        }
    };
    let sort = parse_sort(
        params.sort.as_deref(),
        &[
            ("id", RuleSort::Id),
            ("priority", RuleSort::Priority),
            ("creation_time", RuleSort::CreationTime),
            ("update_time", RuleSort::UpdateTime),
        ],
    )?;
    let mut conn = pool.acquire().await?;
    let listing = list_rules(
        &mut conn,
        &RuleQuery {
            project_id: access.project.id,
            disabled,
            sort,
            page,
        },
    )
    .await?;
    Ok(paginated(&req, listing, page, ImmutableRule::from))
}

/// Add a rule; `Location` names it.
#[utoipa::path(
    post, path = "/projects/{project_name_or_id}/immutabletagrules", tag = "immutable",
    operation_id = "CreateImmuRule",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = ImmutableRule,
    responses(
        (status = 201, description = "Created; Location is .../immutabletagrules/{id}"),
        (status = 400, description = "Bad action, template, selector or pattern", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create rules", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
        (status = 409, description = "The same rule exists", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_rule_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Json<ImmutableRule>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "immutable-tag", "create")?;
    let spec = spec_of(&body)?;
    let mut tx = pool.begin().await?;
    let rule = create_rule(&mut tx, access.project.id, &spec).await?;
    audited(&mut tx, &caller, &access, "create", &rule).await?;
    tx.commit().await?;
    Ok(created_at(&req, rule.id))
}

/// Replace a rule (its selectors, priority, `disabled`).
#[utoipa::path(
    put, path = "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
    tag = "immutable", operation_id = "UpdateImmuRule",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("immutable_rule_id" = i64, Path, description = "Rule id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = ImmutableRule,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad rule, or the body's id is another rule's", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update rules", body = ErrorsBody),
        (status = 404, description = "No such project or rule", body = ErrorsBody),
        (status = 409, description = "Another rule has the same selectors", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_rule_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
    body: web::Json<ImmutableRule>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "immutable-tag", "update")?;
    if body.id != 0 && body.id != id {
        return Err(ApiError::bad_request(
            "the immutable_rule_id doesn't match the id in the payload body of ImmutableRule",
        ));
    }
    let spec = spec_of(&body)?;
    let mut tx = pool.begin().await?;
    let rule = match update_rule(&mut *tx, access.project.id, id, &spec).await {
        Err(Error::NotFound) => return Err(rule_not_found(id)),
        other => other?,
    };
    audited(&mut tx, &caller, &access, "update", &rule).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Remove a rule.
#[utoipa::path(
    delete, path = "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
    tag = "immutable", operation_id = "DeleteImmuRule",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("immutable_rule_id" = i64, Path, description = "Rule id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete rules", body = ErrorsBody),
        (status = 404, description = "No such project or rule", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_rule_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, id) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "immutable-tag", "delete")?;
    let mut tx = pool.begin().await?;
    let rule = match get_rule(&mut *tx, access.project.id, id).await {
        Err(Error::NotFound) => return Err(rule_not_found(id)),
        other => other?,
    };
    delete_rule(&mut *tx, access.project.id, id).await?;
    audited(&mut tx, &caller, &access, "delete", &rule).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}
