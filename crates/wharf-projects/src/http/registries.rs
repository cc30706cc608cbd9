//! Harbor's registries API (tag `registry`): the remote endpoints
//! replication copies to and from (`/registries` CRUD, `ping`, `info`) and
//! the adapter types Wharf speaks (`/replication/adapters`,
//! `/replication/adapterinfos`).
//!
//! System administrators only (and robots granted the system `registry`
//! resource, or `replication-adapter` for the adapter lists). The
//! credential's secret is write-only: it is sealed at rest by
//! [`wharf_replication::registries`] and no answer carries it.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wharf_replication::ReplicationError;
use wharf_replication::registries::{Registries, RegistryKind, RegistryRecord, RegistrySpec};
use wharf_replication::{Endpoint, RegistryClient};

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query};
use super::{ApiError, ApiResult, PageParams, created_at, paginated, require_system};
use crate::security::Caller;

/// The RBAC resource of these endpoints.
const RESOURCE: &str = "registry";

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_registries,
        create_registry,
        get_registry,
        update_registry,
        delete_registry,
        ping_registry,
        get_registry_info,
        list_adapters,
        list_adapter_infos
    ),
    components(schemas(
        Registry,
        RegistryCredential,
        RegistryCreate,
        RegistryUpdate,
        RegistryPing,
        RegistryInfo,
        FilterStyle,
        RegistryProviderInfo,
        EndpointPattern,
        CredentialPattern
    ))
)]
pub struct Doc;

/// Mount this module's routes; `ping` before `{id}` so it is not read as one.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/registries")
            .route(web::get().to(list_registries))
            .route(web::post().to(create_registry)),
    )
    .service(resource("/registries/ping").route(web::post().to(ping_registry)))
    .service(
        resource("/registries/{id}")
            .route(web::get().to(get_registry))
            .route(web::put().to(update_registry))
            .route(web::delete().to(delete_registry)),
    )
    .service(resource("/registries/{id}/info").route(web::get().to(get_registry_info)))
    .service(resource("/replication/adapters").route(web::get().to(list_adapters)))
    .service(resource("/replication/adapterinfos").route(web::get().to(list_adapter_infos)));
}

/// The one mapping from the replication crate's errors to Harbor's
/// statuses (name conflicts and references are found by the handlers).
pub(super) fn replication_error(e: ReplicationError) -> ApiError {
    match e {
        ReplicationError::Invalid(message) => ApiError::bad_request(message),
        ReplicationError::NotFound { what } => ApiError::not_found(format!("{what} not found")),
        ReplicationError::Database(cause) => ApiError::from(cause),
        other => {
            // Talking to a remote registry failed: the caller's input (URL,
            // credential) is the likely cause, as Harbor answers it.
            ApiError::bad_request(other.to_string())
        }
    }
}

/// A registry's credential as answered: never the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryCredential {
    /// `basic`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The user name.
    #[serde(default)]
    pub access_key: Option<String>,
    /// The password or token: accepted, never returned.
    #[serde(default, skip_serializing)]
    pub access_secret: Option<String>,
}

/// Harbor's `Registry`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registry {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `docker-registry`, `harbor` or `wharf`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<RegistryCredential>,
    /// `healthy`, `unhealthy` or `unknown` (never pinged).
    pub status: String,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<RegistryRecord> for Registry {
    fn from(r: RegistryRecord) -> Self {
        Registry {
            id: r.id,
            name: r.name,
            description: r.description,
            kind: r.kind,
            url: r.url,
            insecure: r.insecure,
            credential: r.access_key.map(|key| RegistryCredential {
                kind: Some("basic".into()),
                access_key: Some(key),
                access_secret: None,
            }),
            status: r.status,
            creation_time: r.created_at,
            update_time: r.updated_at,
        }
    }
}

/// The body of `POST /registries` (Harbor's `Registry`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistryCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub credential: Option<RegistryCredential>,
}

/// The body of `PUT /registries/{id}`: absent fields keep their value; an
/// absent `access_secret` keeps the stored one.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegistryUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub credential_type: Option<String>,
    pub access_key: Option<String>,
    pub access_secret: Option<String>,
    pub insecure: Option<bool>,
}

/// The body of `POST /registries/ping`: a stored registry's `id`, or the
/// settings of one not yet created (`id` plus overrides pings the stored
/// one with them).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegistryPing {
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub url: Option<String>,
    pub credential_type: Option<String>,
    pub access_key: Option<String>,
    pub access_secret: Option<String>,
    pub insecure: Option<bool>,
}

/// Query of `GET /registries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRegistriesParams {
    /// Harbor's query: `name` (exact, or `~` for contains), `type`.
    pub q: Option<String>,
    /// Deprecated in Harbor: the name contains this.
    pub name: Option<String>,
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("registry {id} not found"))
}

/// The JSON body as `T`, parsed after the caller was checked (so an
/// anonymous caller gets 401, not a complaint about the body).
pub(super) fn body_of<T: serde::de::DeserializeOwned>(body: web::Json<Value>) -> ApiResult<T> {
    serde_json::from_value(body.into_inner())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Harbor's credential types; Wharf's clients speak Basic (and the bearer
/// tokens a Basic credential obtains).
fn credential_type(t: Option<&str>) -> ApiResult<()> {
    match t {
        None | Some("") | Some("basic") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported credential type {other:?}: use basic"
        ))),
    }
}

fn kind(s: &str) -> ApiResult<RegistryKind> {
    RegistryKind::parse(s).map_err(replication_error)
}

async fn name_taken(registries: &Registries, name: &str, except: Option<i64>) -> ApiResult<()> {
    let all = registries.list().await.map_err(replication_error)?;
    if all.iter().any(|r| r.name == name && Some(r.id) != except) {
        return Err(ApiError::conflict(format!(
            "a registry named {name:?} already exists"
        )));
    }
    Ok(())
}

/// The registries, by id.
#[utoipa::path(
    get, path = "/registries", tag = "registry", operation_id = "listRegistries",
    params(
        ListRegistriesParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of registries; X-Total-Count and Link headers", body = [Registry]),
        (status = 400, description = "Bad query or page", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn list_registries(
    req: HttpRequest,
    caller: Caller,
    registries: web::Data<Registries>,
    params: web::Query<ListRegistriesParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "list")?;
    let page = paging.page()?;
    let q = Query::parse(params.q.as_deref(), &["name", "type"])?;
    let mut all = registries.list().await.map_err(replication_error)?;
    match q.get("name") {
        None => {}
        Some(Matcher::Exact(v)) => all.retain(|r| &r.name == v),
        Some(Matcher::Fuzzy(v)) => all.retain(|r| r.name.contains(v.as_str())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "query key name takes an exact (name=x) or fuzzy (name=~x) value",
            ));
        }
    }
    if let Some(m) = q.get("type") {
        let Some(t) = m.text() else {
            return Err(ApiError::bad_request("query key type takes one value"));
        };
        all.retain(|r| r.kind == t);
    }
    if let Some(name) = params.name.as_deref().filter(|n| !n.is_empty()) {
        all.retain(|r| r.name.contains(name));
    }
    Ok(paginated(&req, page_of(all, page), page, Registry::from))
}

/// Cut one page out of a full, ordered list.
pub(super) fn page_of<T>(all: Vec<T>, page: crate::Page) -> crate::Listing<T> {
    let total = all.len() as i64;
    let size = page.page_size.max(1) as usize;
    let skip = (page.page.max(1) as usize - 1).saturating_mul(size);
    crate::Listing {
        items: all.into_iter().skip(skip).take(size).collect(),
        total,
    }
}

/// Create a registry: 201 with its `Location`.
#[utoipa::path(
    post, path = "/registries", tag = "registry", operation_id = "createRegistry",
    request_body(content = RegistryCreate, description = "E.g. {\"name\":\"dr\",\"type\":\"docker-registry\",\"url\":\"https://dr.example.com\",\"credential\":{\"type\":\"basic\",\"access_key\":\"u\",\"access_secret\":\"p\"},\"insecure\":false}"),
    responses(
        (status = 201, description = "Created", headers(("Location" = String, description = "/api/v2.0/registries/{id}"))),
        (status = 400, description = "Missing name, bad type or URL", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 409, description = "A registry with that name exists", body = ErrorsBody),
    )
)]
pub async fn create_registry(
    req: HttpRequest,
    caller: Caller,
    registries: web::Data<Registries>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "create")?;
    let body: RegistryCreate = body_of(body)?;
    let name = body.name.trim().to_owned();
    name_taken(&registries, &name, None).await?;
    let credential = body.credential.unwrap_or(RegistryCredential {
        kind: None,
        access_key: None,
        access_secret: None,
    });
    credential_type(credential.kind.as_deref())?;
    let spec = RegistrySpec {
        name,
        kind: kind(&body.kind)?,
        url: body.url,
        description: body.description.unwrap_or_default(),
        access_key: credential.access_key.filter(|k| !k.is_empty()),
        access_secret: credential.access_secret.filter(|s| !s.is_empty()),
        insecure: body.insecure,
    };
    let created = registries.create(&spec).await.map_err(replication_error)?;
    Ok(created_at(&req, created.id))
}

/// One registry.
#[utoipa::path(
    get, path = "/registries/{id}", tag = "registry", operation_id = "getRegistry",
    params(("id" = i64, Path, description = "The registry's id")),
    responses(
        (status = 200, description = "The registry", body = Registry),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such registry", body = ErrorsBody),
    )
)]
pub async fn get_registry(
    caller: Caller,
    registries: web::Data<Registries>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let id = path.into_inner();
    let found = registries.get(id).await.map_err(replication_error)?;
    let record = found.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(Registry::from(record)))
}

/// Change a registry; absent fields keep their value.
#[utoipa::path(
    put, path = "/registries/{id}", tag = "registry", operation_id = "updateRegistry",
    params(("id" = i64, Path, description = "The registry's id")),
    request_body(content = RegistryUpdate),
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad name or URL", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such registry", body = ErrorsBody),
        (status = 409, description = "Another registry has that name", body = ErrorsBody),
    )
)]
pub async fn update_registry(
    caller: Caller,
    registries: web::Data<Registries>,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "update")?;
    let id = path.into_inner();
    let body: RegistryUpdate = body_of(body)?;
    credential_type(body.credential_type.as_deref())?;
    let current = registries
        .get(id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| not_found(id))?;
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .unwrap_or(current.name);
    name_taken(&registries, &name, Some(id)).await?;
    let access_key = match body.access_key {
        Some(k) if k.is_empty() => None,
        Some(k) => Some(k),
        None => current.access_key,
    };
    let spec = RegistrySpec {
        name,
        kind: kind(&current.kind)?,
        url: body.url.unwrap_or(current.url),
        description: body.description.unwrap_or(current.description),
        access_key,
        access_secret: body.access_secret.filter(|s| !s.is_empty()),
        insecure: body.insecure.unwrap_or(current.insecure),
    };
    registries
        .update(id, &spec)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a registry no policy uses (412 otherwise, as Harbor).
#[utoipa::path(
    delete, path = "/registries/{id}", tag = "registry", operation_id = "deleteRegistry",
    params(("id" = i64, Path, description = "The registry's id")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such registry", body = ErrorsBody),
        (status = 412, description = "Replication policies use the registry", body = ErrorsBody),
    )
)]
pub async fn delete_registry(
    caller: Caller,
    pool: web::Data<PgPool>,
    registries: web::Data<Registries>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "delete")?;
    let id = path.into_inner();
    registries
        .get(id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| not_found(id))?;
    let users = wharf_replication::policies::policies_using_registry(&pool, id)
        .await
        .map_err(replication_error)?;
    if users > 0 {
        return Err(ApiError::precondition(format!(
            "registry {id} is used by {users} replication policies: delete or change them first"
        )));
    }
    match registries.delete(id).await {
        Ok(true) => Ok(HttpResponse::Ok().finish()),
        Ok(false) => Err(not_found(id)),
        // A proxy-cache project, or a policy created meanwhile, holds it.
        Err(ReplicationError::Database(sqlx::Error::Database(d)))
            if d.is_foreign_key_violation() =>
        {
            Err(ApiError::precondition(format!(
                "registry {id} is used by a proxy-cache project or a replication policy: \
                 delete or change them first"
            )))
        }
        Err(e) => Err(replication_error(e)),
    }
}

/// Check that a registry answers and accepts the credential: a stored one
/// by `id` (its health is recorded), or settings not yet saved.
#[utoipa::path(
    post, path = "/registries/ping", tag = "registry", operation_id = "pingRegistry",
    request_body(content = RegistryPing, description = "{\"id\":1} or {\"type\":\"docker-registry\",\"url\":\"https://...\",\"access_key\":\"u\",\"access_secret\":\"p\"}"),
    responses(
        (status = 200, description = "The registry is healthy"),
        (status = 400, description = "Bad settings, or the registry is unreachable or refuses the credential", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No registry with that id", body = ErrorsBody),
    )
)]
pub async fn ping_registry(
    caller: Caller,
    registries: web::Data<Registries>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let body: RegistryPing = body_of(body)?;
    credential_type(body.credential_type.as_deref())?;
    let inline = body.url.is_some() || body.access_key.is_some() || body.access_secret.is_some();
    if let Some(id) = body.id
        && !inline
    {
        let record = registries
            .ping(id)
            .await
            .map_err(replication_error)?
            .ok_or_else(|| not_found(id))?;
        if record.status != "healthy" {
            return Err(ApiError::bad_request(format!(
                "registry {id} is unhealthy: {}",
                record.status_message
            )));
        }
        return Ok(HttpResponse::Ok().finish());
    }
    // Inline settings, falling back to the stored registry's for what is
    // absent (Harbor's edit dialog pings before saving).
    let stored = match body.id {
        Some(id) => Some(
            registries
                .get(id)
                .await
                .map_err(replication_error)?
                .ok_or_else(|| not_found(id))?,
        ),
        None => None,
    };
    if let Some(k) = &body.kind {
        kind(k)?;
    }
    let url = body
        .url
        .or_else(|| stored.as_ref().map(|s| s.url.clone()))
        .ok_or_else(|| ApiError::bad_request("give the id of a registry or its url"))?;
    let insecure = body
        .insecure
        .or(stored.as_ref().map(|s| s.insecure))
        .unwrap_or(false);
    let mut endpoint = Endpoint::new(&url)
        .map_err(replication_error)?
        .insecure(insecure);
    let user = body
        .access_key
        .filter(|k| !k.is_empty())
        .or_else(|| stored.as_ref().and_then(|s| s.access_key.clone()));
    let client = match (user, body.access_secret, body.id) {
        (Some(user), Some(secret), _) => {
            endpoint = endpoint.with_basic(&user, &secret);
            RegistryClient::new(endpoint).map_err(replication_error)?
        }
        // The stored secret, with the stored URL: test what is saved.
        (_, None, Some(id))
            if url == stored.as_ref().map(|s| s.url.clone()).unwrap_or_default() =>
        {
            registries
                .client(id)
                .await
                .map_err(replication_error)?
                .ok_or_else(|| not_found(id))?
        }
        _ => RegistryClient::new(endpoint).map_err(replication_error)?,
    };
    client
        .ping()
        .await
        .map_err(|e| ApiError::bad_request(format!("the registry is unhealthy: {e}")))?;
    Ok(HttpResponse::Ok().finish())
}

/// Harbor's `FilterStyle`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterStyle {
    #[serde(rename = "type")]
    pub kind: String,
    /// `input`, `radio` or `list`.
    pub style: String,
    pub values: Vec<String>,
}

/// Harbor's `RegistryInfo`: what policies with this registry can use.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub supported_resource_filters: Vec<FilterStyle>,
    pub supported_triggers: Vec<String>,
    pub supported_copy_by_chunk: bool,
}

fn info_of(kind: &str) -> RegistryInfo {
    let filter = |k: &str, style: &str, values: &[&str]| FilterStyle {
        kind: k.into(),
        style: style.into(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    RegistryInfo {
        kind: kind.to_owned(),
        description: match kind {
            "docker-registry" => "Any Docker Registry v2 / OCI distribution server",
            "harbor" => "A Harbor instance, through its registry API",
            _ => "Another Wharf",
        }
        .into(),
        supported_resource_filters: vec![
            filter("name", "input", &[]),
            filter("tag", "input", &[]),
            filter("resource", "radio", &["image", "artifact"]),
        ],
        supported_triggers: vec!["manual".into(), "scheduled".into()],
        supported_copy_by_chunk: true,
    }
}

/// What a registry supports as a policy's remote side.
#[utoipa::path(
    get, path = "/registries/{id}/info", tag = "registry", operation_id = "getRegistryInfo",
    params(("id" = i64, Path, description = "The registry's id")),
    responses(
        (status = 200, description = "Its filters and triggers", body = RegistryInfo),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 404, description = "No such registry", body = ErrorsBody),
    )
)]
pub async fn get_registry_info(
    caller: Caller,
    registries: web::Data<Registries>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, RESOURCE, "read")?;
    let id = path.into_inner();
    let record = registries
        .get(id)
        .await
        .map_err(replication_error)?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(info_of(&record.kind)))
}

/// The registry types Wharf replicates with.
#[utoipa::path(
    get, path = "/replication/adapters", tag = "registry", operation_id = "listRegistryProviderTypes",
    responses(
        (status = 200, description = "The types", body = [String]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn list_adapters(caller: Caller) -> ApiResult<HttpResponse> {
    require_system(&caller, "replication-adapter", "list")?;
    let kinds: Vec<&str> = RegistryKind::ALL.iter().map(|k| k.as_str()).collect();
    Ok(HttpResponse::Ok().json(kinds))
}

/// Harbor's `RegistryProviderEndpointPattern`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointPattern {
    /// `EndpointPatternTypeStandard`: any URL the user types.
    pub endpoint_type: String,
    pub endpoints: Vec<BTreeMap<String, String>>,
}

/// Harbor's `RegistryProviderCredentialPattern`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialPattern {
    pub access_key_type: String,
    pub access_key_data: String,
    pub access_secret_type: String,
    pub access_secret_data: String,
}

/// Harbor's `RegistryProviderInfo`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryProviderInfo {
    pub endpoint_pattern: EndpointPattern,
    pub credential_pattern: CredentialPattern,
}

/// How the console asks for each type's endpoint and credential.
#[utoipa::path(
    get, path = "/replication/adapterinfos", tag = "registry", operation_id = "listRegistryProviderInfos",
    responses(
        (status = 200, description = "Per type", body = BTreeMap<String, RegistryProviderInfo>),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    )
)]
pub async fn list_adapter_infos(caller: Caller) -> ApiResult<HttpResponse> {
    require_system(&caller, "replication-adapter", "list")?;
    let infos: BTreeMap<&str, RegistryProviderInfo> = RegistryKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str(),
                RegistryProviderInfo {
                    endpoint_pattern: EndpointPattern {
                        endpoint_type: "EndpointPatternTypeStandard".into(),
                        endpoints: Vec::new(),
                    },
                    credential_pattern: CredentialPattern {
                        access_key_type: "AccessKeyTypeStandard".into(),
                        access_key_data: String::new(),
                        access_secret_type: "AccessSecretTypeStandard".into(),
                        access_secret_data: String::new(),
                    },
                },
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(infos))
}
