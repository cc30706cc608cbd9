//! `/projects/{project_name}/repositories/{repository_name}/artifacts`:
//! Harbor's `artifact` API — artifacts, their tags, accessories and
//! additions — over the registry's metadata ([`crate::artifacts`]).
//!
//! Every change (copy, tag, delete) is made by the registry
//! (`wharf_registry::Registry`) exactly as `/v2` would make it: admission
//! (quota, immutability), blob locks against garbage collection, and the
//! push or delete event with its audit entry, in one transaction.
//!
//! Differences from Harbor worth knowing: `with_accessory` defaults to true
//! (as Harbor's server does, although its swagger says false); `labels`,
//! `references` and (when asked) `accessories` are always arrays; an
//! addition the artifact does not have is 404.

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wharf_oci::{Digest, ErrorCode, Reference, RepositoryName, Tag};
use wharf_registry::{Registry, RegistryError, Tagged};

use super::error::{ErrorsBody, resource};
use super::query::{Matcher, Query, parse_sort, text_filter};
use super::repositories::{
    encode_repository, existing_repository, project_named, registry, registry_actor,
    registry_error, repository_name,
};
use super::{ApiError, ApiResult, PageParams, paginated, require};
use crate::artifacts::{
    Accessory, Addition, Artifact, ArtifactSearch, ArtifactSort, DeleteFailure, TagFilter,
    TagRecord, TagSearch, TagSort, TimeRange, accessories_of, addition, delete_with_dependents,
    find_artifact, listed_by_index, search_artifacts, search_tags, tags_of, with_extra_attrs,
};
use crate::error::Error;
use crate::immutability::{RuleSet, enabled_rules};
use crate::labels::{Label as StoredLabel, LabelMatch, LabelScope, labels_of};
use crate::security::{Caller, ProjectAccess};
use crate::{Listing, Page};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_artifacts,
        copy_artifact,
        get_artifact,
        delete_artifact,
        list_tags,
        create_tag,
        delete_tag,
        list_accessories,
        get_addition
    ),
    components(schemas(
        ArtifactJson,
        TagJson,
        NewTag,
        ReferenceJson,
        AdditionLink,
        AccessoryJson,
        LabelJson
    ))
)]
pub struct Doc;

const BASE: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts";

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(BASE)
            .route(web::get().to(list_artifacts))
            .route(web::post().to(copy_artifact)),
    )
    .service(
        resource(&format!("{BASE}/{{reference}}"))
            .route(web::get().to(get_artifact))
            .route(web::delete().to(delete_artifact)),
    )
    .service(
        resource(&format!("{BASE}/{{reference}}/tags"))
            .route(web::get().to(list_tags))
            .route(web::post().to(create_tag)),
    )
    .service(
        resource(&format!("{BASE}/{{reference}}/tags/{{tag_name}}"))
            .route(web::delete().to(delete_tag)),
    )
    .service(
        resource(&format!("{BASE}/{{reference}}/accessories"))
            .route(web::get().to(list_accessories)),
    )
    .service(
        resource(&format!("{BASE}/{{reference}}/additions/{{addition}}"))
            .route(web::get().to(get_addition)),
    );
}

// ---------------------------------------------------------------------------
// Shapes.

/// Harbor writes a time that never happened (never pulled) as Go's zero time.
fn harbor_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    let t = t.unwrap_or_else(|| {
        Utc.from_utc_datetime(
            &NaiveDateTime::parse_from_str("0001-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
                .unwrap_or_default(),
        )
    });
    s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// An artifact as Harbor shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Artifact)]
pub struct ArtifactJson {
    pub id: i64,
    /// `IMAGE`, `CHART`, `CNAB`, `WASM`, `SIGNATURE.COSIGN`,
    /// `SIGNATURE.NOTATION`, `SBOM`, another type named by the config's
    /// media type, or `UNKNOWN`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The config's media type (an index: its own media type).
    pub media_type: String,
    pub manifest_media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub project_id: i64,
    pub repository_id: i64,
    /// The full repository name.
    pub repository_name: String,
    pub digest: String,
    /// The manifest and everything it references.
    pub size: i64,
    /// The digest of the type's icon.
    pub icon: String,
    pub push_time: DateTime<Utc>,
    /// `0001-01-01T00:00:00.000Z` when never pulled (as Harbor).
    #[serde(serialize_with = "harbor_time")]
    #[schema(value_type = String, format = DateTime)]
    pub pull_time: Option<DateTime<Utc>>,
    /// Image: architecture, os, config, created, author; chart: its Chart.yaml.
    #[schema(value_type = Object)]
    pub extra_attrs: Map<String, Value>,
    pub annotations: BTreeMap<String, String>,
    /// The children of an index.
    pub references: Vec<ReferenceJson>,
    /// Present unless `with_tag=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagJson>>,
    pub addition_links: BTreeMap<String, AdditionLink>,
    /// Filled in with `with_label=true`.
    pub labels: Vec<LabelJson>,
    /// Present unless `with_accessory=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accessories: Option<Vec<AccessoryJson>>,
}

/// A tag as Harbor shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tag)]
pub struct TagJson {
    pub id: i64,
    pub repository_id: i64,
    pub artifact_id: i64,
    pub name: String,
    pub push_time: DateTime<Utc>,
    #[serde(serialize_with = "harbor_time")]
    #[schema(value_type = String, format = DateTime)]
    pub pull_time: Option<DateTime<Utc>>,
    /// Whether an immutability rule protects it (only computed with
    /// `with_immutable_status=true`).
    pub immutable: bool,
}

/// What `POST .../tags` takes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTag {
    pub name: String,
}

/// A child of an index.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reference)]
pub struct ReferenceJson {
    pub parent_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_id: Option<i64>,
    pub child_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub platform: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// Where an addition can be fetched.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdditionLink {
    pub href: String,
    pub absolute: bool,
}

/// An accessory as Harbor shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Accessory)]
pub struct AccessoryJson {
    pub id: i64,
    pub artifact_id: i64,
    pub subject_artifact_id: i64,
    pub subject_artifact_digest: String,
    pub subject_artifact_repo: String,
    pub size: i64,
    pub digest: String,
    /// `signature.cosign`, `signature.notation`, `sbom.harbor` or `subject.accessory`.
    #[serde(rename = "type")]
    pub kind: String,
    pub icon: String,
    pub creation_time: DateTime<Utc>,
}

/// A label on an artifact.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Label)]
pub struct LabelJson {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub color: String,
    /// `g` (global) or `p` (project).
    pub scope: String,
    pub project_id: i64,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<StoredLabel> for LabelJson {
    fn from(l: StoredLabel) -> Self {
        LabelJson {
            id: l.id,
            name: l.name,
            description: l.description,
            color: l.color,
            scope: l.scope.code().to_owned(),
            project_id: match l.scope {
                LabelScope::Global => 0,
                LabelScope::Project(id) => id,
            },
            creation_time: l.created_at,
            update_time: l.updated_at,
        }
    }
}

fn tag_json(tag: TagRecord, rules: Option<&RuleSet>, repository: &str) -> TagJson {
    TagJson {
        immutable: rules.is_some_and(|r| r.protecting(repository, &tag.name).is_some()),
        id: tag.id,
        repository_id: tag.repository_id,
        artifact_id: tag.artifact_id,
        name: tag.name,
        push_time: tag.push_time,
        pull_time: tag.pull_time,
    }
}

fn accessory_json(accessory: Accessory) -> AccessoryJson {
    let a = accessory.artifact;
    AccessoryJson {
        id: a.id,
        artifact_id: a.id,
        subject_artifact_id: accessory.subject_id,
        subject_artifact_digest: accessory.subject_digest,
        subject_artifact_repo: a.repository_name,
        size: a.size,
        digest: a.digest,
        kind: accessory.accessory_type.to_owned(),
        icon: a.kind.icon().to_owned(),
        creation_time: a.created_at,
    }
}

/// The `with_*` choices of an artifact request.
#[derive(Debug, Clone, Copy)]
struct Options {
    tags: bool,
    labels: bool,
    accessories: bool,
    immutable_status: bool,
}

/// Artifacts ready to show: tags, labels, accessories, extra attributes.
struct Assembly {
    tags: HashMap<i64, Vec<TagRecord>>,
    labels: HashMap<i64, Vec<StoredLabel>>,
    accessories: HashMap<i64, Vec<Accessory>>,
    rules: Option<RuleSet>,
}

async fn assemble(
    pool: &PgPool,
    registry: Option<&Registry>,
    project: &ProjectAccess,
    artifacts: &mut [Artifact],
    options: Options,
) -> ApiResult<Assembly> {
    let ids: Vec<i64> = artifacts.iter().map(|a| a.id).collect();
    if let Some(registry) = registry {
        with_extra_attrs(pool, registry, artifacts).await?;
    }
    let tags = if options.tags {
        tags_of(pool, &ids).await?
    } else {
        HashMap::new()
    };
    let labels = if options.labels {
        labels_of(pool, &ids).await?
    } else {
        HashMap::new()
    };
    let accessories = if options.accessories {
        let subjects: Vec<&Artifact> = artifacts.iter().collect();
        accessories_of(pool, &subjects).await?
    } else {
        HashMap::new()
    };
    let rules = if options.tags && options.immutable_status {
        Some(enabled_rules(pool, project.project.id).await?)
    } else {
        None
    };
    Ok(Assembly {
        tags,
        labels,
        accessories,
        rules,
    })
}

fn artifact_json(artifact: Artifact, assembly: &mut Assembly, options: Options) -> ArtifactJson {
    let (project, repo) = artifact
        .repository_name
        .split_once('/')
        .unwrap_or((&artifact.repository_name, ""));
    let addition_links = artifact
        .additions()
        .iter()
        .map(|a| {
            (
                a.name().to_owned(),
                AdditionLink {
                    href: format!(
                        "/api/v2.0/projects/{project}/repositories/{}/artifacts/{}/additions/{}",
                        encode_repository(repo),
                        artifact.digest,
                        a.name()
                    ),
                    absolute: false,
                },
            )
        })
        .collect();
    let rules = assembly.rules.as_ref();
    let tags = options.tags.then(|| {
        assembly
            .tags
            .remove(&artifact.id)
            .unwrap_or_default()
            .into_iter()
            .map(|t| tag_json(t, rules, &artifact.repository_name))
            .collect()
    });
    let labels = assembly
        .labels
        .remove(&artifact.id)
        .unwrap_or_default()
        .into_iter()
        .map(LabelJson::from)
        .collect();
    let accessories = options.accessories.then(|| {
        assembly
            .accessories
            .remove(&artifact.id)
            .unwrap_or_default()
            .into_iter()
            .map(accessory_json)
            .collect()
    });
    ArtifactJson {
        id: artifact.id,
        icon: artifact.kind.icon().to_owned(),
        kind: artifact.kind.as_str().to_owned(),
        media_type: artifact.media_type,
        manifest_media_type: artifact.manifest_media_type,
        artifact_type: artifact.artifact_type,
        project_id: artifact.project_id,
        repository_id: artifact.repository_id,
        repository_name: artifact.repository_name.clone(),
        digest: artifact.digest.clone(),
        size: artifact.size,
        push_time: artifact.push_time,
        pull_time: artifact.pull_time,
        extra_attrs: artifact.extra_attrs.unwrap_or_default(),
        annotations: artifact.annotations,
        references: artifact
            .references
            .into_iter()
            .map(|r| ReferenceJson {
                parent_id: r.parent_id,
                child_id: r.child_id,
                child_digest: r.child_digest,
                platform: r.platform,
                annotations: r.annotations,
                urls: r.urls,
            })
            .collect(),
        tags,
        addition_links,
        labels,
        accessories,
    }
}

// ---------------------------------------------------------------------------
// Request helpers.

/// A `{reference}` path segment: a digest or a tag.
fn parse_reference(raw: &str) -> ApiResult<Reference> {
    Reference::parse(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid reference {raw:?}: {e}")))
}

fn artifact_not_found(repository: &RepositoryName, reference: &Reference) -> ApiError {
    let separator = if reference.as_digest().is_some() {
        "@"
    } else {
        ":"
    };
    ApiError::not_found(format!(
        "artifact {repository}{separator}{reference} not found"
    ))
}

/// The artifact a request names, 404 when the repository lacks it.
async fn artifact_named(
    pool: &PgPool,
    repository: &RepositoryName,
    reference: &Reference,
) -> ApiResult<Artifact> {
    match find_artifact(pool, repository, reference).await {
        Ok(artifact) => Ok(artifact),
        Err(Error::NotFound) => Err(artifact_not_found(repository, reference)),
        Err(e) => Err(e.into()),
    }
}

/// Project access, repository name and reference of an artifact path.
async fn artifact_path(
    pool: &PgPool,
    caller: &Caller,
    project: &str,
    repository: &str,
    reference: &str,
    resource: &str,
    action: &str,
) -> ApiResult<(ProjectAccess, RepositoryName, Reference)> {
    let access = project_named(pool, caller, project).await?;
    require(caller, &access, resource, action)?;
    let name = repository_name(&access.project.name, repository)?;
    let reference = parse_reference(reference)?;
    Ok((access, name, reference))
}

/// A time bound of a `q` range: Harbor's `2006-01-02 15:04:05` (UTC) or RFC 3339.
fn parse_time(key: &str, raw: &str) -> ApiResult<DateTime<Utc>> {
    let text = raw.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(naive.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{key} bound {text:?} is not a time: use \"2006-01-02 15:04:05\" or RFC 3339"
            ))
        })
}

fn time_range(query: &Query, key: &str) -> ApiResult<Option<TimeRange>> {
    match query.get(key) {
        None => Ok(None),
        Some(Matcher::Range(from, to)) => Ok(Some((
            from.as_deref().map(|t| parse_time(key, t)).transpose()?,
            to.as_deref().map(|t| parse_time(key, t)).transpose()?,
        ))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{key} takes a range: {key}=[2006-01-02 15:04:05~2006-01-03 00:00:00]"
        ))),
    }
}

fn label_ids(query: &Query) -> ApiResult<Option<(Vec<i64>, LabelMatch)>> {
    let parse = |values: &[String]| -> ApiResult<Vec<i64>> {
        values
            .iter()
            .map(|v| v.trim_matches(',').parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::bad_request("labels takes label ids"))
    };
    match query.get("labels") {
        None => Ok(None),
        Some(Matcher::Exact(v)) => Ok(Some((parse(std::slice::from_ref(v))?, LabelMatch::All))),
        Some(Matcher::Intersection(vs)) => Ok(Some((parse(vs)?, LabelMatch::All))),
        Some(Matcher::Union(vs)) => Ok(Some((parse(vs)?, LabelMatch::Any))),
        Some(_) => Err(ApiError::bad_request(
            "labels takes an id, (id1 id2) for all of them or {id1 id2} for any",
        )),
    }
}

fn tag_filter(query: &Query) -> ApiResult<Option<TagFilter>> {
    Ok(match query.get("tags") {
        None => None,
        Some(Matcher::Exact(v)) if v == "*" => Some(TagFilter::Tagged),
        Some(Matcher::Exact(v)) if v == "nil" => Some(TagFilter::Untagged),
        Some(Matcher::Exact(v)) => Some(TagFilter::Exact(v.clone())),
        Some(Matcher::Fuzzy(v)) => Some(TagFilter::Contains(v.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "tags takes *, nil, a tag (tags=v) or part of one (tags=~v)",
            ));
        }
    })
}

/// Query of the artifact listing and lookup.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactParams {
    /// `tags` (`*`, `nil`, `v`, `~v`), `digest`, `labels` (`(id1 id2)` all,
    /// `{id1 id2}` any), `push_time` and `pull_time` ranges.
    pub q: Option<String>,
    /// `push_time`, `pull_time`, `id`, `digest`; `-` for descending
    /// (default `-push_time`).
    pub sort: Option<String>,
    /// Include the tags (default true).
    pub with_tag: Option<bool>,
    /// Include the labels (default false).
    pub with_label: Option<bool>,
    /// Include the accessories (default true, as Harbor's server).
    pub with_accessory: Option<bool>,
    /// Compute each tag's `immutable` (default false).
    pub with_immutable_status: Option<bool>,
    /// Accepted for compatibility; there is no scanner.
    #[allow(dead_code)] // accepted and documented, changes nothing
    pub with_scan_overview: Option<bool>,
    /// Accepted for compatibility; there is no SBOM generator.
    #[allow(dead_code)] // accepted and documented, changes nothing
    pub with_sbom_overview: Option<bool>,
    /// Accepted for compatibility; inherited accessories are not listed.
    #[allow(dead_code)] // accepted and documented, changes nothing
    pub with_inherited_accessory: Option<bool>,
    /// Accepted for compatibility (signatures are accessories).
    #[allow(dead_code)] // accepted and documented, changes nothing
    pub with_signature: Option<bool>,
}

impl ArtifactParams {
    fn options(&self) -> Options {
        Options {
            tags: self.with_tag.unwrap_or(true),
            labels: self.with_label.unwrap_or(false),
            accessories: self.with_accessory.unwrap_or(true),
            immutable_status: self.with_immutable_status.unwrap_or(false),
        }
    }
}

/// Query of the tag listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagParams {
    /// `name` (exact or fuzzy).
    pub q: Option<String>,
    /// `name`, `push_time`, `pull_time`, `id`; `-` for descending (default `-push_time`).
    pub sort: Option<String>,
    /// Compute each tag's `immutable` (default false).
    pub with_immutable_status: Option<bool>,
}

/// Query of the copy.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CopyParams {
    /// `project/repository:tag` or `project/repository@digest`.
    pub from: Option<String>,
}

/// Query of paged listings without other parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessoryParams {
    /// `type` (exact): only accessories of that type.
    pub q: Option<String>,
}

/// Split `from` into repository and reference.
fn parse_from(from: &str) -> ApiResult<(RepositoryName, Reference)> {
    let invalid = || ApiError::bad_request(format!("invalid input: {from}"));
    let (repository, reference) = if let Some((repository, digest)) = from.rsplit_once('@') {
        let digest = Digest::parse(digest).map_err(|_| invalid())?;
        (repository, Reference::Digest(digest))
    } else if let Some((repository, tag)) = from.rsplit_once(':') {
        (
            repository,
            Reference::Tag(Tag::parse(tag).map_err(|_| invalid())?),
        )
    } else {
        return Err(invalid());
    };
    let repository = RepositoryName::parse(repository).map_err(|_| invalid())?;
    if !repository.as_str().contains('/') {
        return Err(invalid());
    }
    Ok((repository, reference))
}

/// One page out of a list computed in full.
fn page_of<T>(items: Vec<T>, page: Page) -> Listing<T> {
    let total = items.len() as i64;
    let size = page.page_size.clamp(1, Page::MAX_SIZE) as usize;
    let skip = (page.page.max(1) as usize - 1).saturating_mul(size);
    Listing {
        items: items.into_iter().skip(skip).take(size).collect(),
        total,
    }
}

// ---------------------------------------------------------------------------
// Handlers.

/// The artifacts of a repository: every manifest except the untagged
/// children of an index and accessories (listed under their subject).
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}/artifacts",
    tag = "artifact", operation_id = "listArtifacts",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ArtifactParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of artifacts; X-Total-Count and Link headers", body = [ArtifactJson]),
        (status = 400, description = "Bad query or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list artifacts", body = ErrorsBody),
        (status = 404, description = "No such project or repository", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_artifacts(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    registry: Option<web::Data<Registry>>,
    path: web::Path<(String, String)>,
    params: web::Query<ArtifactParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (project, repository) = path.into_inner();
    let access = project_named(&pool, &caller, &project).await?;
    require(&caller, &access, "artifact", "list")?;
    let name = repository_name(&access.project.name, &repository)?;
    let page = paging.page()?;
    let query = Query::parse(
        params.q.as_deref(),
        &["tags", "digest", "labels", "push_time", "pull_time"],
    )?;
    let digest = match query.get("digest") {
        None => None,
        Some(Matcher::Exact(v)) => Some(v.clone()),
        Some(_) => return Err(ApiError::bad_request("digest takes an exact value")),
    };
    let stored = existing_repository(&pool, &name).await?;
    let search = ArtifactSearch {
        repository_id: stored.id,
        tags: tag_filter(&query)?,
        digest,
        labels: label_ids(&query)?,
        push_time: time_range(&query, "push_time")?,
        pull_time: time_range(&query, "pull_time")?,
        sort: parse_sort(
            params.sort.as_deref(),
            &[
                ("id", ArtifactSort::Id),
                ("push_time", ArtifactSort::PushTime),
                ("pull_time", ArtifactSort::PullTime),
                ("digest", ArtifactSort::Digest),
            ],
        )?,
        page,
    };
    let Listing { mut items, total } = search_artifacts(&pool, &search).await?;
    let options = params.options();
    let mut assembly = assemble(
        &pool,
        registry.as_ref().map(|r| r.get_ref()),
        &access,
        &mut items,
        options,
    )
    .await?;
    let items = items
        .into_iter()
        .map(|a| artifact_json(a, &mut assembly, options))
        .collect();
    Ok(paginated(&req, Listing { items, total }, page, |a| a))
}

/// Copy an artifact (with the children of an index, the accessories and
/// the tags of all of them) from another repository, possibly of another
/// project, into this one (created if new).
#[utoipa::path(
    post, path = "/projects/{project_name}/repositories/{repository_name}/artifacts",
    tag = "artifact", operation_id = "CopyArtifact",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        CopyParams,
    ),
    responses(
        (status = 201, description = "Copied; Location names the copy"),
        (status = 400, description = "Bad from, or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create artifacts here or read the source; the source is an accessory; quota or immutability refused", body = ErrorsBody),
        (status = 404, description = "No such project, or no such source artifact", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn copy_artifact(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String)>,
    params: web::Query<CopyParams>,
) -> ApiResult<HttpResponse> {
    let (project, repository) = path.into_inner();
    let access = project_named(&pool, &caller, &project).await?;
    require(&caller, &access, "artifact", "create")?;
    let target = repository_name(&access.project.name, &repository)?;
    let Some(from) = params.from.as_deref().filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad_request("the from parameter is required"));
    };
    let (source, reference) = parse_from(from)?;
    let source_access = project_named(&pool, &caller, source.project()).await?;
    require(&caller, &source_access, "artifact", "read")?;
    let artifact = artifact_named(&pool, &source, &reference).await?;
    if artifact.is_accessory {
        return Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "DENIED",
            "the operation isn't supported for an artifact accessory",
        ));
    }
    let registry = registry(registry_data)?;
    registry
        .copy(&source, &reference, &target, registry_actor(&caller))
        .await
        .map_err(|e| registry_error(e, false))?;
    let reference = match &reference {
        Reference::Tag(t) => t.to_string(),
        Reference::Digest(d) => d.to_string(),
    };
    Ok(super::created_at(&req, reference))
}

/// One artifact, by digest or tag.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}",
    tag = "artifact", operation_id = "getArtifact",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
        ArtifactParams,
    ),
    responses(
        (status = 200, description = "The artifact", body = ArtifactJson),
        (status = 400, description = "Bad reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read artifacts", body = ErrorsBody),
        (status = 404, description = "No such project or artifact", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_artifact(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry: Option<web::Data<Registry>>,
    path: web::Path<(String, String, String)>,
    params: web::Query<ArtifactParams>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference) = path.into_inner();
    let (access, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "artifact",
        "read",
    )
    .await?;
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let options = params.options();
    let mut items = vec![artifact];
    let mut assembly = assemble(
        &pool,
        registry.as_ref().map(|r| r.get_ref()),
        &access,
        &mut items,
        options,
    )
    .await?;
    let artifact = items.pop().ok_or_else(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(artifact_json(artifact, &mut assembly, options)))
}

/// Delete an artifact with its tags, its accessories, and the children of
/// an index that nothing else uses. 412 if an index of the repository
/// references it, or an immutable tag protects it.
#[utoipa::path(
    delete, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}",
    tag = "artifact", operation_id = "deleteArtifact",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Bad reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete artifacts", body = ErrorsBody),
        (status = 404, description = "No such project or artifact", body = ErrorsBody),
        (status = 412, description = "Referenced by an index, or protected by an immutable tag", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_artifact(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference) = path.into_inner();
    let (_, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "artifact",
        "delete",
    )
    .await?;
    let artifact = artifact_named(&pool, &name, &reference).await?;
    if listed_by_index(&pool, &artifact).await? {
        return Err(ApiError::precondition(
            "the deleting artifact is referenced by others",
        ));
    }
    let registry = registry(registry_data)?;
    match delete_with_dependents(&pool, &registry, &name, artifact, registry_actor(&caller)).await {
        Ok(_) => Ok(HttpResponse::Ok().finish()),
        Err(DeleteFailure::Registry(RegistryError::Distribution(d)))
            if d.code == ErrorCode::ManifestUnknown =>
        {
            Ok(HttpResponse::Ok().finish())
        }
        Err(DeleteFailure::Registry(e)) => Err(registry_error(e, true)),
        Err(DeleteFailure::Database(e)) => Err(e.into()),
    }
}

/// The tags of an artifact.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
    tag = "artifact", operation_id = "listTags",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
        TagParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of tags; X-Total-Count and Link headers", body = [TagJson]),
        (status = 400, description = "Bad query, reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list tags", body = ErrorsBody),
        (status = 404, description = "No such project or artifact", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_tags(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String, String)>,
    params: web::Query<TagParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference) = path.into_inner();
    let (access, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "tag",
        "list",
    )
    .await?;
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["name"])?;
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let search = TagSearch {
        artifact_id: artifact.id,
        name: text_filter(&query, "name")?,
        sort: parse_sort(
            params.sort.as_deref(),
            &[
                ("id", TagSort::Id),
                ("name", TagSort::Name),
                ("push_time", TagSort::PushTime),
                ("pull_time", TagSort::PullTime),
            ],
        )?,
        page,
    };
    let listing = search_tags(&pool, &search).await?;
    let rules = if params.with_immutable_status.unwrap_or(false) {
        Some(enabled_rules(pool.get_ref(), access.project.id).await?)
    } else {
        None
    };
    Ok(paginated(&req, listing, page, |t| {
        tag_json(t, rules.as_ref(), name.as_str())
    }))
}

/// Add a tag to an artifact. 409 if the repository has a tag of that name.
#[utoipa::path(
    post, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
    tag = "artifact", operation_id = "createTag",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
    ),
    request_body = NewTag,
    responses(
        (status = 201, description = "Created"),
        (status = 400, description = "Bad tag, reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to create tags; quota or immutability refused", body = ErrorsBody),
        (status = 404, description = "No such project or artifact", body = ErrorsBody),
        (status = 409, description = "The repository already has a tag of that name", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_tag(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String, String)>,
    body: web::Json<NewTag>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference) = path.into_inner();
    let (_, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "tag",
        "create",
    )
    .await?;
    let tag = Tag::parse(&body.name)
        .map_err(|e| ApiError::bad_request(format!("invalid tag {:?}: {e}", body.name)))?;
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let digest = Digest::parse(&artifact.digest).map_err(|_| ApiError::internal())?;
    let registry = registry(registry_data)?;
    match registry
        .tag(&name, &digest, &tag, registry_actor(&caller))
        .await
        .map_err(|e| registry_error(e, false))?
    {
        Tagged::Created => Ok(HttpResponse::Created().finish()),
        Tagged::Exists { .. } => Err(ApiError::conflict(format!(
            "tag {tag} already exists in {name}"
        ))),
    }
}

/// Remove a tag of an artifact (the artifact stays).
#[utoipa::path(
    delete, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}",
    tag = "artifact", operation_id = "deleteTag",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
        ("tag_name" = String, Path, description = "The tag"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Bad reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to delete tags", body = ErrorsBody),
        (status = 404, description = "No such project, artifact, or tag on it", body = ErrorsBody),
        (status = 412, description = "An immutable tag rule protects the tag", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_tag(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference, tag_name) = path.into_inner();
    let (_, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "tag",
        "delete",
    )
    .await?;
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let attached = tags_of(&pool, &[artifact.id])
        .await?
        .remove(&artifact.id)
        .unwrap_or_default()
        .into_iter()
        .any(|t| t.name == tag_name);
    let tag = Tag::parse(&tag_name)
        .ok()
        .filter(|_| attached)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "tag {tag_name} attached to artifact {} not found",
                artifact.id
            ))
        })?;
    let registry = registry(registry_data)?;
    registry
        .delete(&name, &Reference::Tag(tag), registry_actor(&caller))
        .await
        .map_err(|e| registry_error(e, true))?;
    Ok(HttpResponse::Ok().finish())
}

/// The accessories of an artifact: manifests whose subject it is (signatures,
/// SBOMs, other referrers) and cosign signatures under its `.sig` tag.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/accessories",
    tag = "artifact", operation_id = "listAccessories",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
        AccessoryParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of accessories; X-Total-Count and Link headers", body = [AccessoryJson]),
        (status = 400, description = "Bad query, reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list accessories", body = ErrorsBody),
        (status = 404, description = "No such project or artifact", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn list_accessories(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String, String)>,
    params: web::Query<AccessoryParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference) = path.into_inner();
    let (_, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "accessory",
        "list",
    )
    .await?;
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["type"])?;
    let kind = match query.get("type") {
        None => None,
        Some(Matcher::Exact(v)) => Some(v.clone()),
        Some(_) => return Err(ApiError::bad_request("type takes an exact value")),
    };
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let accessories: Vec<Accessory> = accessories_of(&pool, &[&artifact])
        .await?
        .remove(&artifact.id)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| kind.as_deref().is_none_or(|k| k == a.accessory_type))
        .collect();
    Ok(paginated(
        &req,
        page_of(accessories, page),
        page,
        accessory_json,
    ))
}

/// An addition of an artifact: an image's build history; a chart's
/// `values.yaml`, `readme.md` or dependencies.
#[utoipa::path(
    get, path = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/{addition}",
    tag = "artifact", operation_id = "getAddition",
    params(
        ("project_name" = String, Path, description = "Project name"),
        ("repository_name" = String, Path, description = "Repository name without the project, with '/' encoded twice (a%252Fb)"),
        ("reference" = String, Path, description = "Digest or tag"),
        ("addition" = String, Path, description = "build_history, values.yaml, readme.md or dependencies"),
    ),
    responses(
        (status = 200, description = "The addition, in its own media type"),
        (status = 400, description = "Not an addition name, bad reference or repository name", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read additions", body = ErrorsBody),
        (status = 404, description = "No such project or artifact, or the artifact has no such addition", body = ErrorsBody),
    ),
    security((), ("basic" = []))
)]
async fn get_addition(
    caller: Caller,
    pool: web::Data<PgPool>,
    registry_data: Option<web::Data<Registry>>,
    path: web::Path<(String, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, repository, reference, wanted) = path.into_inner();
    let (_, name, reference) = artifact_path(
        &pool,
        &caller,
        &project,
        &repository,
        &reference,
        "artifact-addition",
        "read",
    )
    .await?;
    // Harbor's other addition names belong to features Wharf lacks: the
    // artifact has no such addition.
    const FOREIGN: &[&str] = &["sbom", "license", "files", "vulnerabilities"];
    let known = Addition::parse(&wanted);
    if known.is_none() && !FOREIGN.iter().any(|f| f.eq_ignore_ascii_case(&wanted)) {
        return Err(ApiError::bad_request(format!(
            "unknown addition {wanted:?}: use build_history, values.yaml, readme.md or dependencies"
        )));
    }
    let artifact = artifact_named(&pool, &name, &reference).await?;
    let none = || {
        ApiError::not_found(format!(
            "the {} artifact {name}@{} has no {wanted} addition",
            artifact.kind.as_str(),
            artifact.digest
        ))
    };
    let Some(known) = known else {
        return Err(none());
    };
    let registry = registry(registry_data)?;
    match addition(&registry, &artifact, known).await? {
        Some(content) => Ok(HttpResponse::Ok()
            .content_type(content.content_type)
            .body(content.body)),
        None => Err(none()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_a_tag_or_a_digest() {
        let (repo, reference) = parse_from("lib/app:v1").unwrap();
        assert_eq!(repo.as_str(), "lib/app");
        assert_eq!(reference.as_tag().unwrap().as_str(), "v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        let (repo, reference) = parse_from(&format!("lib/a/b@{digest}")).unwrap();
        assert_eq!(repo.as_str(), "lib/a/b");
        assert_eq!(reference.as_digest().unwrap().to_string(), digest);
        for bad in [
            "lib/app",
            "app:v1",
            "lib/app@sha256:zz",
            "lib/App:v1",
            "lib/app:",
        ] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_is_go_zero_time() {
        #[derive(Serialize)]
        struct T {
            #[serde(serialize_with = "harbor_time")]
            t: Option<DateTime<Utc>>,
        }
        assert_eq!(
            serde_json::to_string(&T { t: None }).unwrap(),
            r#"{"t":"0001-01-01T00:00:00.000Z"}"#
        );
    }

    #[test]
    fn openapi_declares_every_operation_and_path_parameter() {
        use utoipa::OpenApi as _;
        let mut doc = Doc::openapi();
        doc.merge(super::super::repositories::Doc::openapi());
        let doc = serde_json::to_value(&doc).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            let wanted: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let tag = op["tags"][0].as_str().unwrap();
                assert!(
                    ["artifact", "repository"].contains(&tag),
                    "{method} {path}: {tag}"
                );
                assert!(op["operationId"].is_string(), "{method} {path}");
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for name in &wanted {
                    assert!(
                        declared.contains(name),
                        "{method} {path}: {name} undeclared"
                    );
                }
            }
        }
        assert_eq!(operations, 14, "every handler is documented");
    }

    #[test]
    fn pages_of_computed_lists() {
        let page = |p, s| Page {
            page: p,
            page_size: s,
        };
        let listing = page_of((1..=5).collect::<Vec<_>>(), page(2, 2));
        assert_eq!((listing.items, listing.total), (vec![3, 4], 5));
        assert!(
            page_of((1..=5).collect::<Vec<_>>(), page(4, 2))
                .items
                .is_empty()
        );
    }
}
