//! A project's repositories, a repository's artifacts (digest, type, tags,
//! size, push and pull times, platforms of an index, accessories, the pull
//! command), one artifact's page, and the tag and delete forms.
//!
//! Tag and artifact changes go through the registry, as the REST API's do,
//! so immutability rules, quotas, webhooks and the audit log apply.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_oci::{Digest, ErrorCode, Reference, RepositoryName, Tag};
use wharf_projects::artifacts::{
    Artifact, ArtifactSearch, DeleteFailure, RepositorySearch, accessories_of,
    delete_with_dependents, find_artifact, get_repository, listed_by_index, search_artifacts,
    search_repositories, tags_of,
};
use wharf_projects::labels::{Label, LabelQuery, LabelScope, labels_of, list_labels};
use wharf_projects::users::TextMatch;
use wharf_projects::{Error, ProjectAccess};
use wharf_registry::{RegistryError, Tagged};

use super::{form_failed, unconfirmed};
use crate::access::{self, ProjectNav};
use crate::error::{UiError, UiResult};
use crate::format::{self, artifact_url, project_url, repository_url, short_digest};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

struct RepositoryRow {
    name: String,
    url: String,
    artifacts: i64,
    pulls: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<RepositoryRow>,
    pager: Pager,
    q: String,
    can_delete_project: bool,
    csrf: String,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// `GET /projects/{project}/repositories`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> UiResult<HttpResponse> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, &viewer, &path).await?;
    access::require(&access, "repository", "list")?;
    let q = query.q.clone().unwrap_or_default().trim().to_owned();
    let page = query.page.page();
    let listing = search_repositories(
        pool,
        &RepositorySearch {
            project_ids: Some(vec![access.project.id]),
            name: (!q.is_empty()).then(|| TextMatch::Contains(q.clone())),
            sort: Vec::new(),
            page,
        },
    )
    .await?;
    let rows = listing
        .items
        .iter()
        .map(|r| RepositoryRow {
            url: repository_url(&r.name),
            name: r.name.clone(),
            artifacts: r.artifact_count,
            pulls: r.pull_count,
            updated: format::time(r.updated_at),
        })
        .collect();
    let here = project_url(&access.project.name, "/repositories");
    Ok(layout::ok(&RepositoriesPage {
        chrome: Chrome::new(&viewer, access.project.name.clone(), "projects"),
        nav: ProjectNav::new(&access, &viewer, "repositories"),
        rows,
        pager: Pager::new(&here, &[("q", q.clone())], page, listing.total),
        q,
        can_delete_project: access.allows("", "delete"),
        csrf: viewer.csrf.clone(),
    }))
}

/// An artifact as its table row and page show it.
struct ArtifactView {
    digest: String,
    short: String,
    url: String,
    /// `image`, `index`, `chart`, `signature`, `sbom`, `other`: the icon.
    kind: &'static str,
    kind_label: String,
    tags: Vec<String>,
    size: String,
    pushed: String,
    pulled: String,
    /// `linux/amd64`, ... for an index.
    platforms: Vec<String>,
    /// `signature.cosign`, ... with the accessory's short digest.
    accessories: Vec<(String, String)>,
    /// The command to pull it by its first tag, else by digest.
    pull: String,
    /// The labels on it, by name.
    labels: Vec<LabelChip>,
}

/// A label as a chip: its colour, name and whether it is global.
pub(super) struct LabelChip {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) color: String,
    pub(super) global: bool,
}

impl From<Label> for LabelChip {
    fn from(l: Label) -> Self {
        LabelChip {
            id: l.id,
            global: l.scope == LabelScope::Global,
            name: l.name,
            color: l.color,
        }
    }
}

fn icon(artifact: &Artifact) -> &'static str {
    use wharf_projects::artifacts::ArtifactKind;
    if artifact.is_index() {
        return "index";
    }
    match artifact.kind {
        ArtifactKind::Image => "image",
        ArtifactKind::Chart => "chart",
        ArtifactKind::CosignSignature | ArtifactKind::NotationSignature => "signature",
        ArtifactKind::Sbom => "sbom",
        _ => "other",
    }
}

fn platform(value: &serde_json::Value) -> Option<String> {
    let os = value.get("os")?.as_str()?;
    let arch = value.get("architecture")?.as_str()?;
    Some(match value.get("variant").and_then(|v| v.as_str()) {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    })
}

fn pull_command(host: &str, repository: &str, tags: &[String], digest: &str) -> String {
    match tags.first() {
        Some(tag) => format!("docker pull {host}/{repository}:{tag}"),
        None => format!("docker pull {host}/{repository}@{digest}"),
    }
}

/// Artifacts with their tags and accessories, as the pages show them.
async fn views(
    services: &Services,
    req: &HttpRequest,
    artifacts: &[Artifact],
) -> UiResult<Vec<ArtifactView>> {
    let pool = services.pool.get_ref();
    let ids: Vec<i64> = artifacts.iter().map(|a| a.id).collect();
    let mut tags = tags_of(pool, &ids).await?;
    let refs: Vec<&Artifact> = artifacts.iter().collect();
    let mut accessories = accessories_of(pool, &refs).await?;
    let mut labels = labels_of(pool, &ids).await?;
    let host = services.registry_host(req);
    Ok(artifacts
        .iter()
        .map(|a| {
            let tags: Vec<String> = tags
                .remove(&a.id)
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name)
                .collect();
            let accessories = accessories
                .remove(&a.id)
                .unwrap_or_default()
                .into_iter()
                .map(|acc| {
                    (
                        acc.accessory_type.to_owned(),
                        short_digest(&acc.artifact.digest),
                    )
                })
                .collect();
            ArtifactView {
                short: short_digest(&a.digest),
                url: artifact_url(&a.repository_name, &a.digest),
                kind: icon(a),
                kind_label: a.kind.as_str().to_lowercase(),
                size: format::size(a.size),
                pushed: format::time(a.push_time),
                pulled: format::maybe_time(a.pull_time),
                platforms: a
                    .references
                    .iter()
                    .filter_map(|r| r.platform.as_ref().and_then(platform))
                    .collect(),
                accessories,
                labels: labels
                    .remove(&a.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(LabelChip::from)
                    .collect(),
                pull: pull_command(&host, &a.repository_name, &tags, &a.digest),
                tags,
                digest: a.digest.clone(),
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    nav: ProjectNav,
    repository: String,
    short_name: String,
    description: String,
    artifacts: Vec<ArtifactView>,
    pager: Pager,
    can_add_tag: bool,
    can_delete_tag: bool,
    can_delete_artifact: bool,
    here: String,
}

/// The repository `project/repository` the viewer may read.
async fn readable_repository(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    repository: &str,
) -> UiResult<(ProjectAccess, RepositoryName)> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, viewer, project).await?;
    access::require(&access, "repository", "read")?;
    let name =
        RepositoryName::parse(&format!("{}/{repository}", access.project.name)).map_err(|_| {
            UiError::not_found(format!("There is no repository {project}/{repository}."))
        })?;
    Ok((access, name))
}

/// `GET /projects/{project}/repositories/{repository}`: its artifacts.
pub(crate) async fn repository(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let (project, repository) = path.into_inner();
    let (access, name) = readable_repository(&services, &viewer, &project, &repository).await?;
    let pool = services.pool.get_ref();
    let stored = match get_repository(pool, name.as_str()).await {
        Ok(stored) => stored,
        Err(Error::NotFound) => {
            return Err(UiError::not_found(format!(
                "There is no repository {name}."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    access::require(&access, "artifact", "list")?;
    let page = query.page();
    let listing = search_artifacts(
        pool,
        &ArtifactSearch {
            repository_id: stored.id,
            page,
            ..ArtifactSearch::default()
        },
    )
    .await?;
    let artifacts = views(&services, &req, &listing.items).await?;
    let here = repository_url(name.as_str());
    Ok(layout::ok(&RepositoryPage {
        chrome: Chrome::new(&viewer, name.as_str().to_owned(), "projects"),
        nav: ProjectNav::new(&access, &viewer, "repositories"),
        short_name: name.repository_in_project().to_owned(),
        repository: name.as_str().to_owned(),
        description: stored.description,
        artifacts,
        pager: Pager::new(&here, &[], page, listing.total),
        can_add_tag: access.allows("tag", "create"),
        can_delete_tag: access.allows("tag", "delete"),
        can_delete_artifact: access.allows("artifact", "delete"),
        here,
    }))
}

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPage {
    chrome: Chrome,
    nav: ProjectNav,
    repository: String,
    repository_url: String,
    artifact: ArtifactView,
    media_type: String,
    children: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    /// Labels that may still be attached (project ones, then global ones).
    attachable: Vec<LabelChip>,
    can_attach_label: bool,
    can_detach_label: bool,
    can_add_tag: bool,
    can_delete_tag: bool,
    can_delete_artifact: bool,
    here: String,
}

/// `GET /projects/{project}/repositories/{repository}/-/artifacts/{digest}`.
pub(crate) async fn artifact(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, String, String)>,
) -> UiResult<HttpResponse> {
    let (project, repository, digest) = path.into_inner();
    let (access, name) = readable_repository(&services, &viewer, &project, &repository).await?;
    access::require(&access, "artifact", "read")?;
    let missing = || UiError::not_found(format!("There is no artifact {name}@{digest}."));
    let reference = Digest::parse(&digest).map_err(|_| missing())?;
    let found = match find_artifact(
        services.pool.get_ref(),
        &name,
        &Reference::Digest(reference),
    )
    .await
    {
        Ok(found) => found,
        Err(Error::NotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let children = found
        .references
        .iter()
        .map(|r| {
            (
                short_digest(&r.child_digest),
                r.platform.as_ref().and_then(platform).unwrap_or_default(),
            )
        })
        .collect();
    let annotations = found
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let media_type = found.manifest_media_type.clone();
    let view = views(&services, &req, std::slice::from_ref(&found))
        .await?
        .pop()
        .ok_or_else(missing)?;
    let can_attach_label = access.allows("artifact-label", "create");
    let attachable = if can_attach_label {
        attachable_labels(&services, access.project.id, &view.labels).await?
    } else {
        Vec::new()
    };
    Ok(layout::ok(&ArtifactPage {
        chrome: Chrome::new(&viewer, format!("{name}@{}", view.short), "projects"),
        nav: ProjectNav::new(&access, &viewer, "repositories"),
        repository: name.as_str().to_owned(),
        repository_url: repository_url(name.as_str()),
        here: view.url.clone(),
        artifact: view,
        media_type,
        children,
        annotations,
        attachable,
        can_attach_label,
        can_detach_label: access.allows("artifact-label", "delete"),
        can_add_tag: access.allows("tag", "create"),
        can_delete_tag: access.allows("tag", "delete"),
        can_delete_artifact: access.allows("artifact", "delete"),
    }))
}

/// The project's and the global labels not yet on the artifact (the first
/// hundred of each: more than a select can usefully offer).
async fn attachable_labels(
    services: &Services,
    project_id: i64,
    attached: &[LabelChip],
) -> UiResult<Vec<LabelChip>> {
    let pool = services.pool.get_ref();
    let mut offered = Vec::new();
    for scope in [LabelScope::Project(project_id), LabelScope::Global] {
        let listing = list_labels(
            pool,
            &LabelQuery {
                page: wharf_projects::Page {
                    page: 1,
                    page_size: wharf_projects::Page::MAX_SIZE,
                },
                ..LabelQuery::new(scope)
            },
        )
        .await?;
        offered.extend(
            listing
                .items
                .into_iter()
                .filter(|l| attached.iter().all(|a| a.id != l.id))
                .map(LabelChip::from),
        );
    }
    Ok(offered)
}

#[derive(Deserialize)]
pub(crate) struct TagForm {
    /// The repository's full name.
    repository: String,
    digest: String,
    tag: String,
    /// The page to return to.
    back: Option<String>,
    confirm: Option<String>,
}

/// The repository and artifact a form names, in the project of the path.
async fn posted_artifact(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    form: &TagForm,
    resource: &str,
    action: &str,
) -> UiResult<(RepositoryName, Artifact)> {
    let (_, name, artifact) = named_artifact(
        services,
        viewer,
        project,
        (&form.repository, &form.digest),
        (resource, action),
    )
    .await?;
    Ok((name, artifact))
}

/// The artifact `digest` of `repository` (full names, from a form), in the
/// project of the path, once `action` on `resource` is allowed there.
pub(super) async fn named_artifact(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    (repository, digest): (&str, &str),
    (resource, action): (&str, &str),
) -> UiResult<(ProjectAccess, RepositoryName, Artifact)> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, viewer, project).await?;
    access::require(&access, resource, action)?;
    let name = RepositoryName::parse(repository)
        .ok()
        .filter(|n| n.project() == access.project.name)
        .ok_or_else(|| {
            UiError::BadRequest("The form names no repository of this project.".into())
        })?;
    let parsed = Digest::parse(digest)
        .map_err(|_| UiError::BadRequest("The form names no artifact.".into()))?;
    let artifact = match find_artifact(pool, &name, &Reference::Digest(parsed)).await {
        Ok(artifact) => artifact,
        Err(Error::NotFound) => {
            return Err(UiError::not_found(format!(
                "The artifact {name}@{} is gone.",
                short_digest(digest)
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((access, name, artifact))
}

/// The registry's refusal in the console's words.
fn registry_refusal(e: RegistryError) -> UiError {
    match e {
        RegistryError::Distribution(d) => match d.code {
            ErrorCode::ManifestUnknown | ErrorCode::NameUnknown => UiError::NotFound(d.message),
            _ => UiError::BadRequest(d.message),
        },
        other => {
            tracing::error!(error = %other, "registry error in the console");
            UiError::Internal
        }
    }
}

fn back_of(form: &TagForm) -> String {
    format::safe_next(form.back.as_deref())
}

/// `POST /projects/{project}/tags/add`.
pub(crate) async fn add_tag(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<TagForm>,
) -> HttpResponse {
    let back = back_of(&form);
    let done = async {
        let (name, artifact) =
            posted_artifact(&services, &viewer, &path, &form, "tag", "create").await?;
        let tag = Tag::parse(form.tag.trim())
            .map_err(|e| UiError::BadRequest(format!("The tag {:?} is invalid: {e}.", form.tag)))?;
        let digest = Digest::parse(&artifact.digest).map_err(|_| UiError::Internal)?;
        match services
            .registry()?
            .tag(&name, &digest, &tag, viewer.registry_actor())
            .await
            .map_err(registry_refusal)?
        {
            Tagged::Created => Ok(layout::see_other(&back, Some(&format!("Tag {tag} added.")))),
            Tagged::Exists { .. } => Err(UiError::BadRequest(format!(
                "The tag {tag} already exists in {name}."
            ))),
        }
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("add-tag-{}", form.digest)))
}

/// `POST /projects/{project}/tags/delete`.
pub(crate) async fn delete_tag(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<TagForm>,
) -> HttpResponse {
    let back = back_of(&form);
    let done = async {
        let (name, artifact) =
            posted_artifact(&services, &viewer, &path, &form, "tag", "delete").await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Remove the tag {} from {name}?", form.tag),
            &back,
        ) {
            return Ok(page);
        }
        let attached = tags_of(services.pool.get_ref(), &[artifact.id])
            .await?
            .remove(&artifact.id)
            .unwrap_or_default()
            .into_iter()
            .any(|t| t.name == form.tag);
        let tag = Tag::parse(&form.tag)
            .ok()
            .filter(|_| attached)
            .ok_or_else(|| UiError::not_found(format!("The tag {} is gone.", form.tag)))?;
        services
            .registry()?
            .delete(&name, &Reference::Tag(tag), viewer.registry_actor())
            .await
            .map_err(registry_refusal)?;
        Ok(layout::see_other(
            &back,
            Some(&format!("Tag {} removed.", form.tag)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("tags-{}", form.digest)))
}

/// `POST /projects/{project}/artifacts/delete`: the artifact, its tags and
/// its accessories.
pub(crate) async fn delete_artifact(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<TagForm>,
) -> HttpResponse {
    let repository_page = RepositoryName::parse(&form.repository)
        .map(|n| repository_url(n.as_str()))
        .unwrap_or_else(|_| "/projects".to_owned());
    let back = back_of(&form);
    let done = async {
        let (name, artifact) =
            posted_artifact(&services, &viewer, &path, &form, "artifact", "delete").await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!(
                "Delete the artifact {name}@{} with its tags and accessories?",
                short_digest(&artifact.digest)
            ),
            &back,
        ) {
            return Ok(page);
        }
        let pool = services.pool.get_ref();
        if listed_by_index(pool, &artifact).await? {
            return Err(UiError::BadRequest(
                "An index lists this artifact: delete the index first.".into(),
            ));
        }
        let short = short_digest(&artifact.digest);
        match delete_with_dependents(
            pool,
            services.registry()?,
            &name,
            artifact,
            viewer.registry_actor(),
        )
        .await
        {
            Ok(_) => {}
            Err(DeleteFailure::Registry(RegistryError::Distribution(d)))
                if d.code == ErrorCode::ManifestUnknown => {}
            Err(DeleteFailure::Registry(e)) => return Err(registry_refusal(e)),
            Err(DeleteFailure::Database(e)) => return Err(e.into()),
        }
        Ok(layout::see_other(
            &repository_page,
            Some(&format!("Artifact {short} deleted.")),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("delete-{}", form.digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_commands_prefer_a_tag() {
        assert_eq!(
            pull_command("reg.example:5000", "team/app", &["v1".into()], "sha256:ab"),
            "docker pull reg.example:5000/team/app:v1"
        );
        assert_eq!(
            pull_command("reg.example", "team/app", &[], "sha256:ab"),
            "docker pull reg.example/team/app@sha256:ab"
        );
    }

    #[test]
    fn platforms_read_as_os_and_architecture() {
        let p = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert_eq!(platform(&p).as_deref(), Some("linux/arm64/v8"));
        let p = serde_json::json!({"os": "linux", "architecture": "amd64"});
        assert_eq!(platform(&p).as_deref(), Some("linux/amd64"));
    }
}
