//! The artifact read model behind Harbor's repository and artifact APIs:
//! repositories, artifacts (one per manifest row of a repository), their
//! type, size, tags, index references, accessories and additions.
//!
//! It reads the registry core's tables (`repositories`, `manifests`,
//! `manifest_references`, `tags`) and writes only facts the API owns: a
//! repository's description, the extra attributes derived once from an
//! artifact's config blob, and the pull times and counts that the pull-event
//! queue flushes in batches ([`record_pulls`]). Changes to content — tagging,
//! copying, deleting — go through `wharf_registry::Registry`, so they get the
//! same admission, blob locks and events as `/v2`.
//!
//! What Harbor lists as "the artifacts of a repository" leaves out two kinds
//! of manifest, shown instead under the artifact they belong to: the
//! untagged children of an index (its `references`) and accessories —
//! manifests whose `subject` is an artifact of the repository, and cosign
//! signatures stored under the legacy `sha256-<hex>.sig` tag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read as _;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgExecutor, PgPool};
use wharf_oci::{Digest, ParsedManifest, Reference, RepositoryName, media_types};
use wharf_registry::{BlobContent, Registry};

use crate::error::{Error, Result};
use crate::labels::{LabelMatch, label_condition};
use crate::users::{TextMatch, escape_like};
use crate::{Listing, Page};

/// Helm's chart config media type.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm's chart archive layer media type.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The layer media type of cosign's legacy (tag-based) signatures.
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The artifact type of cosign signatures stored as OCI 1.1 referrers.
pub const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The artifact type of Sigstore bundles (cosign v3).
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The artifact type of Notation signatures.
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// The artifact type of SBOMs Harbor generates.
pub const HARBOR_SBOM: &str = "application/vnd.goharbor.harbor.sbom.v1";
/// CNAB's config media type.
pub const CNAB_CONFIG: &str = "application/vnd.cnab.config.v1+json";
/// CNAB's index artifact type (in the `org.opencontainers.artifactType` annotation).
pub const CNAB_INDEX: &str = "application/vnd.cnab.manifest.v1";
/// WebAssembly modules' config media type.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v1+json";

/// Largest config blob read for extra attributes and build history.
const CONFIG_LIMIT: u64 = 4 * 1024 * 1024;
/// Largest chart archive read for its values and readme.
const CHART_LIMIT: u64 = 32 * 1024 * 1024;
/// Largest file taken out of a chart archive.
const CHART_FILE_LIMIT: u64 = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Types.

/// What an artifact is, decided from its media types (Harbor's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A container image, or an index of images (`IMAGE`).
    Image,
    /// A Helm chart (`CHART`).
    Chart,
    /// A Cloud Native Application Bundle (`CNAB`).
    Cnab,
    /// A WebAssembly module (`WASM`).
    Wasm,
    /// A cosign signature (`SIGNATURE.COSIGN`).
    CosignSignature,
    /// A Notation signature (`SIGNATURE.NOTATION`).
    NotationSignature,
    /// A software bill of materials (`SBOM`).
    Sbom,
    /// Another OCI artifact whose config type names it
    /// (`application/vnd.<vendor>.<name>.config.<v>+json` → `NAME`).
    Other(String),
    /// Nothing recognisable (`UNKNOWN`).
    Unknown,
}

impl ArtifactKind {
    /// Harbor's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ArtifactKind::Image => "IMAGE",
            ArtifactKind::Chart => "CHART",
            ArtifactKind::Cnab => "CNAB",
            ArtifactKind::Wasm => "WASM",
            ArtifactKind::CosignSignature => "SIGNATURE.COSIGN",
            ArtifactKind::NotationSignature => "SIGNATURE.NOTATION",
            ArtifactKind::Sbom => "SBOM",
            ArtifactKind::Other(name) => name,
            ArtifactKind::Unknown => "UNKNOWN",
        }
    }

    /// Harbor's built-in icon for the type (the digest its `/icons` serves).
    pub fn icon(&self) -> &'static str {
        match self {
            ArtifactKind::Image => {
                "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06"
            }
            ArtifactKind::Chart => {
                "sha256:61cf3a178ff0f75bf08a25d96b75cf7355dc197749a9f128ed3ef34b0df05518"
            }
            ArtifactKind::Cnab => {
                "sha256:089bdda265c14d8686111402c8ad629e8177a1ceb7dcd0f7f39b6480f623b3bd"
            }
            _ => "sha256:da834479c923584f4cbcdecc0dac61f32bef1d51e8aae598cf16bd154efab49f",
        }
    }

    /// The additions Harbor offers for the type.
    pub fn additions(&self, is_index: bool) -> &'static [Addition] {
        match self {
            ArtifactKind::Image if !is_index => &[Addition::BuildHistory],
            ArtifactKind::Chart => &[Addition::Values, Addition::Readme, Addition::Dependencies],
            _ => &[],
        }
    }
}

/// Decide the type of a manifest: by its `artifactType`, then its config
/// media type (manifests) or its artifact-type annotation (indexes).
pub fn classify(manifest: &ParsedManifest) -> ArtifactKind {
    if manifest.is_index() {
        let declared = manifest.artifact_type.as_deref().or_else(|| {
            manifest
                .annotations
                .get("org.opencontainers.artifactType")
                .map(String::as_str)
        });
        return match declared {
            Some(CNAB_INDEX) => ArtifactKind::Cnab,
            Some(other) => by_type_key(other).unwrap_or(ArtifactKind::Image),
            None => ArtifactKind::Image,
        };
    }
    let config = manifest.config.as_ref().map(|c| c.media_type.as_str());
    let is_legacy_cosign = manifest
        .layers
        .iter()
        .any(|l| l.media_type == COSIGN_SIMPLESIGNING);
    if is_legacy_cosign {
        return ArtifactKind::CosignSignature;
    }
    manifest
        .artifact_type
        .as_deref()
        .and_then(by_type_key)
        .or_else(|| config.and_then(by_type_key))
        .unwrap_or(ArtifactKind::Unknown)
}

fn by_type_key(key: &str) -> Option<ArtifactKind> {
    Some(match key {
        COSIGN_SIGNATURE | SIGSTORE_BUNDLE => ArtifactKind::CosignSignature,
        NOTATION_SIGNATURE => ArtifactKind::NotationSignature,
        HARBOR_SBOM
        | "application/spdx+json"
        | "application/vnd.cyclonedx+json"
        | "application/vnd.syft+json" => ArtifactKind::Sbom,
        media_types::OCI_CONFIG | media_types::DOCKER_CONFIG => ArtifactKind::Image,
        HELM_CONFIG => ArtifactKind::Chart,
        CNAB_CONFIG => ArtifactKind::Cnab,
        WASM_CONFIG => ArtifactKind::Wasm,
        other => return vendor_config_name(other).map(ArtifactKind::Other),
    })
}

/// `application/vnd.<vendor>.<name>.config.<version>+json` → `NAME`, as
/// Harbor derives the type of artifacts it has no processor for.
fn vendor_config_name(media_type: &str) -> Option<String> {
    let rest = media_type.strip_prefix("application/vnd.")?;
    let rest = rest.strip_suffix("+json")?;
    let (_vendor, rest) = rest.split_once('.')?;
    let (name, version) = rest.rsplit_once(".config.")?;
    if name.is_empty() || version.is_empty() || version.contains('.') {
        return None;
    }
    Some(name.to_uppercase())
}

/// Harbor's accessory type of a manifest with a subject (or a legacy cosign
/// signature): `signature.cosign`, `signature.notation`, `sbom.harbor`, or
/// `subject.accessory` for any other referrer.
pub fn accessory_type(kind: &ArtifactKind, artifact_type: Option<&str>) -> &'static str {
    match kind {
        ArtifactKind::CosignSignature => "signature.cosign",
        ArtifactKind::NotationSignature => "signature.notation",
        ArtifactKind::Sbom if artifact_type == Some(HARBOR_SBOM) => "sbom.harbor",
        _ => "subject.accessory",
    }
}

/// The tag cosign stores a signature of `digest` under (`sha256-<hex>.sig`).
pub fn cosign_signature_tag(digest: &str) -> Option<String> {
    digest
        .split_once(':')
        .map(|(alg, hex)| format!("{alg}-{hex}.sig"))
}

/// An extra document an artifact offers (Harbor's additions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addition {
    /// An image's build history (its config's `history`).
    BuildHistory,
    /// A chart's `values.yaml`.
    Values,
    /// A chart's `README.md`.
    Readme,
    /// A chart's dependencies (from Chart.yaml).
    Dependencies,
}

impl Addition {
    /// Every addition Wharf knows.
    pub const ALL: [Addition; 4] = [
        Addition::BuildHistory,
        Addition::Values,
        Addition::Readme,
        Addition::Dependencies,
    ];

    /// The path word (`build_history`, `values.yaml`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Addition::BuildHistory => "build_history",
            Addition::Values => "values.yaml",
            Addition::Readme => "readme.md",
            Addition::Dependencies => "dependencies",
        }
    }

    /// The addition named `name` (case-insensitive, as Harbor).
    pub fn parse(name: &str) -> Option<Addition> {
        Addition::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// An addition's content and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionContent {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A repository with its counts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Repository {
    pub id: i64,
    pub project_id: i64,
    /// The full name, `project/repo`.
    pub name: String,
    pub description: String,
    /// How many artifacts the repository lists (see the module comment).
    pub artifact_count: i64,
    pub pull_count: i64,
    pub created_at: DateTime<Utc>,
    /// The latest of: a push into it, a tag set in it, its description changing.
    pub updated_at: DateTime<Utc>,
}

/// A tag as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagRecord {
    pub id: i64,
    pub repository_id: i64,
    /// The artifact (manifest row) it points at.
    pub artifact_id: i64,
    pub name: String,
    /// When a push or the API last pointed it.
    pub push_time: DateTime<Utc>,
    /// When it was last pulled (by this tag); `None` for never.
    pub pull_time: Option<DateTime<Utc>>,
}

/// A child of an index, as listed in its `references`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactReference {
    pub parent_id: i64,
    /// The child's artifact id; `None` if the repository lacks it.
    pub child_id: Option<i64>,
    pub child_digest: String,
    pub platform: Option<Value>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub urls: Option<Vec<String>>,
}

/// An artifact: one manifest of one repository, with what Harbor derives
/// from it.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub id: i64,
    pub kind: ArtifactKind,
    /// Harbor's `media_type`: the config's media type for a manifest, the
    /// manifest's own for an index.
    pub media_type: String,
    pub manifest_media_type: String,
    /// `artifactType`, or the config media type of a manifest.
    pub artifact_type: Option<String>,
    pub project_id: i64,
    pub repository_id: i64,
    /// The full repository name.
    pub repository_name: String,
    pub digest: String,
    /// The manifest and everything it references (an index: its children).
    pub size: i64,
    /// When it was first pushed, or a tag last pointed at it, if later.
    pub push_time: DateTime<Utc>,
    pub pull_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub annotations: BTreeMap<String, String>,
    /// The manifest's subject, if it has one.
    pub subject_digest: Option<String>,
    /// Children of an index.
    pub references: Vec<ArtifactReference>,
    /// The parsed manifest.
    pub manifest: ParsedManifest,
    /// Derived from the config blob; `None` until [`with_extra_attrs`] ran.
    pub extra_attrs: Option<Map<String, Value>>,
    /// Whether it is an accessory of another artifact of the repository (and
    /// so hidden from the repository's artifact list).
    pub is_accessory: bool,
}

impl Artifact {
    /// Whether it is an index (or manifest list).
    pub fn is_index(&self) -> bool {
        self.manifest.is_index()
    }

    /// The additions it offers.
    pub fn additions(&self) -> &'static [Addition] {
        self.kind.additions(self.is_index())
    }
}

/// An accessory of an artifact: a manifest whose subject it is, or a legacy
/// cosign signature of it.
#[derive(Debug, Clone)]
pub struct Accessory {
    /// The accessory artifact.
    pub artifact: Artifact,
    /// `signature.cosign`, `signature.notation`, `sbom.harbor`, `subject.accessory`.
    pub accessory_type: &'static str,
    pub subject_id: i64,
    pub subject_digest: String,
}

// ---------------------------------------------------------------------------
// SQL shared by the queries below.

/// The push time of the artifact `m`: its creation, or the last time a tag
/// was pointed at it.
const PUSH_TIME: &str =
    "GREATEST(m.created_at, (SELECT max(pt.updated_at) FROM tags pt WHERE pt.manifest_id = m.id))";

/// Whether the manifest aliased `a` is an accessory of an artifact of its
/// repository: its subject is there, or it carries cosign's legacy
/// signature tag for a manifest that is there.
fn is_accessory(a: &str) -> String {
    format!(
        "(({a}.subject_digest IS NOT NULL AND EXISTS (
            SELECT 1 FROM manifests sub
             WHERE sub.repository_id = {a}.repository_id AND sub.digest = {a}.subject_digest))
          OR EXISTS (
            SELECT 1 FROM tags sigt JOIN manifests sig
                ON sig.repository_id = sigt.repository_id
               AND sig.digest = 'sha256:' || substr(sigt.name, 8, 64)
             WHERE sigt.manifest_id = {a}.id AND length(sigt.name) = 75
               AND sigt.name LIKE 'sha256-%.sig'))"
    )
}

/// Whether the manifest aliased `a` is listed among its repository's
/// artifacts: not an accessory, and not an untagged child of an index there.
fn listed(a: &str) -> String {
    format!(
        "(NOT {acc} AND (EXISTS (SELECT 1 FROM tags lt WHERE lt.manifest_id = {a}.id)
             OR NOT EXISTS (
                SELECT 1 FROM manifest_references lr JOIN manifests lp ON lp.id = lr.manifest_id
                 WHERE lr.kind = 'manifest' AND lr.digest = {a}.digest
                   AND lp.repository_id = {a}.repository_id)))",
        acc = is_accessory(a)
    )
}

/// The columns of [`ArtifactRow`] from `manifests m JOIN repositories r JOIN projects p`.
fn artifact_columns() -> String {
    format!(
        "m.id, m.repository_id, r.name AS repository_name, p.id AS project_id, m.digest,
         m.media_type, m.artifact_type, m.subject_digest, m.content, m.created_at,
         {PUSH_TIME} AS push_time, m.pull_time, m.extra_attrs, {} AS is_accessory",
        is_accessory("m")
    )
}

const ARTIFACT_FROM: &str = "manifests m
    JOIN repositories r ON r.id = m.repository_id
    JOIN projects p ON p.name = r.project AND NOT p.deleted";

#[derive(sqlx::FromRow)]
struct ArtifactRow {
    id: i64,
    repository_id: i64,
    repository_name: String,
    project_id: i64,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    subject_digest: Option<String>,
    content: Vec<u8>,
    created_at: DateTime<Utc>,
    push_time: DateTime<Utc>,
    pull_time: Option<DateTime<Utc>>,
    extra_attrs: Option<Value>,
    is_accessory: bool,
}

// ---------------------------------------------------------------------------
// Repositories.

/// A column repositories can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositorySort {
    Id,
    Name,
    CreationTime,
    UpdateTime,
    PullCount,
    ArtifactCount,
}

impl RepositorySort {
    fn column(self) -> &'static str {
        match self {
            RepositorySort::Id => "id",
            RepositorySort::Name => "name",
            RepositorySort::CreationTime => "created_at",
            RepositorySort::UpdateTime => "updated_at",
            RepositorySort::PullCount => "pull_count",
            RepositorySort::ArtifactCount => "artifact_count",
        }
    }

    /// Whether the column is computed per row (not stored in
    /// `repositories`), so ordering by it needs it for every row.
    fn is_computed(self) -> bool {
        matches!(
            self,
            RepositorySort::UpdateTime | RepositorySort::ArtifactCount
        )
    }
}

/// Filters, order and page for [`search_repositories`].
#[derive(Debug, Clone, Default)]
pub struct RepositorySearch {
    /// Only repositories of these projects; `None` for every live project.
    pub project_ids: Option<Vec<i64>>,
    /// Match on the full name (`project/repo`).
    pub name: Option<TextMatch>,
    /// Sort keys with `true` for descending; newest first when empty.
    pub sort: Vec<(RepositorySort, bool)>,
    pub page: Page,
}

fn repository_select() -> String {
    format!(
        "SELECT r.id, p.id AS project_id, r.name, r.description, r.pull_count, r.created_at,
                GREATEST(r.updated_at,
                         (SELECT max(um.created_at) FROM manifests um WHERE um.repository_id = r.id),
                         (SELECT max(ut.updated_at) FROM tags ut WHERE ut.repository_id = r.id))
                    AS updated_at,
                (SELECT count(*) FROM manifests c WHERE c.repository_id = r.id AND {})
                    AS artifact_count
           FROM repositories r JOIN projects p ON p.name = r.project AND NOT p.deleted",
        listed("c")
    )
}

/// Repositories matching `search`, one page of them.
pub async fn search_repositories(
    pool: &PgPool,
    search: &RepositorySearch,
) -> Result<Listing<Repository>> {
    let (limit, offset) = search.page.limit_offset();
    let filter = "($1::bigint[] IS NULL OR p.id = ANY($1))
          AND ($2::text IS NULL OR r.name = $2)
          AND ($3::text IS NULL OR r.name ILIKE $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM repositories r JOIN projects p ON p.name = r.project AND NOT p.deleted
          WHERE {filter}"
    )))
    .bind(&search.project_ids)
    .bind(TextMatch::exact(search.name.as_ref()))
    .bind(TextMatch::pattern(search.name.as_ref()))
    .fetch_one(pool)
    .await?;
    let mut order: Vec<String> = search
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    if order.is_empty() {
        order.push("created_at DESC".into());
    }
    order.push("id DESC".into());
    // The last-change time and artifact count are correlated subqueries, so
    // computing them for every row before OFFSET made deep pages cost in
    // proportion to their depth. When the order uses only stored columns,
    // the page's ids are chosen first and only those rows get the computed
    // columns; the outer ORDER BY repeats the same keys (same values), so
    // the page and its order are the same as before.
    let computed = search.sort.iter().any(|(key, _)| key.is_computed());
    let sql = if computed {
        format!(
            "SELECT * FROM ({} WHERE {filter}) AS x ORDER BY {} LIMIT $4 OFFSET $5",
            repository_select(),
            order.join(", ")
        )
    } else {
        format!(
            "WITH page AS (
                SELECT r.id FROM repositories r
                  JOIN projects p ON p.name = r.project AND NOT p.deleted
                 WHERE {filter}
                 ORDER BY {} LIMIT $4 OFFSET $5)
             SELECT * FROM ({} WHERE r.id IN (SELECT id FROM page)) AS x ORDER BY {}",
            order
                .iter()
                .map(|key| format!("r.{key}"))
                .collect::<Vec<_>>()
                .join(", "),
            repository_select(),
            order.join(", ")
        )
    };
    let items = sqlx::query_as::<_, Repository>(sqlx::AssertSqlSafe(sql))
        .bind(&search.project_ids)
        .bind(TextMatch::exact(search.name.as_ref()))
        .bind(TextMatch::pattern(search.name.as_ref()))
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    Ok(Listing { items, total })
}

/// The repository named `name` (full name), in a live project.
pub async fn get_repository(pool: &PgPool, name: &str) -> Result<Repository> {
    sqlx::query_as::<_, Repository>(sqlx::AssertSqlSafe(format!(
        "{} WHERE r.name = $1",
        repository_select()
    )))
    .bind(name)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)
}

/// Set a repository's description.
pub async fn set_repository_description(
    db: impl PgExecutor<'_>,
    repository_id: i64,
    description: &str,
) -> Result<()> {
    let done =
        sqlx::query("UPDATE repositories SET description = $2, updated_at = now() WHERE id = $1")
            .bind(repository_id)
            .bind(description)
            .execute(db)
            .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// The digests of a repository's manifests, those no index of it
/// references first, so a repository is emptied parents before children.
pub async fn manifest_digests(db: impl PgExecutor<'_>, repository_id: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT m.digest FROM manifests m
          WHERE m.repository_id = $1
          ORDER BY EXISTS (SELECT 1 FROM manifest_references mr JOIN manifests p
                              ON p.id = mr.manifest_id
                           WHERE mr.kind = 'manifest' AND mr.digest = m.digest
                             AND p.repository_id = m.repository_id),
                   m.id",
    )
    .bind(repository_id)
    .fetch_all(db)
    .await?)
}

/// Remove the row of a repository that holds no manifests any more (its
/// upload sessions and blob links go with it), in the caller's
/// transaction. False if it still holds manifests (something was pushed
/// meanwhile) or is gone already.
pub async fn delete_empty_repository(tx: &mut PgConnection, repository_id: i64) -> Result<bool> {
    // The row lock makes a concurrent push into the repository wait (its
    // manifest insert checks the foreign key), so the emptiness seen here
    // holds when the row goes.
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT id FROM repositories WHERE id = $1 FOR UPDATE")
            .bind(repository_id)
            .fetch_optional(&mut *tx)
            .await?;
    if locked.is_none() {
        return Ok(false);
    }
    let holds: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1)")
            .bind(repository_id)
            .fetch_one(&mut *tx)
            .await?;
    if holds {
        return Ok(false);
    }
    sqlx::query("DELETE FROM repositories WHERE id = $1")
        .bind(repository_id)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// Artifacts.

/// Which tags an artifact listing asks for (Harbor's `q=tags=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// Tagged artifacts only (`tags=*`).
    Tagged,
    /// Untagged artifacts only (`tags=nil`).
    Untagged,
    /// A tag with exactly this name.
    Exact(String),
    /// A tag whose name contains this text.
    Contains(String),
}

/// A column artifacts can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSort {
    Id,
    PushTime,
    PullTime,
    Digest,
}

impl ArtifactSort {
    fn order(self, desc: bool) -> String {
        let dir = if desc { "DESC" } else { "ASC" };
        match self {
            ArtifactSort::Id => format!("m.id {dir}"),
            ArtifactSort::PushTime => format!("push_time {dir}"),
            // Never pulled counts as pulled before everything else.
            ArtifactSort::PullTime => format!(
                "m.pull_time {dir} {}",
                if desc { "NULLS LAST" } else { "NULLS FIRST" }
            ),
            ArtifactSort::Digest => format!("m.digest {dir}"),
        }
    }
}

/// A time span, either end open.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Filters, order and page for [`search_artifacts`].
#[derive(Debug, Clone, Default)]
pub struct ArtifactSearch {
    pub repository_id: i64,
    pub tags: Option<TagFilter>,
    /// Only the artifact with this digest.
    pub digest: Option<String>,
    /// Only artifacts carrying these labels (all or any of them).
    pub labels: Option<(Vec<i64>, LabelMatch)>,
    /// Pushed within (from, to), either end open.
    pub push_time: Option<TimeRange>,
    /// Pulled within (from, to), either end open.
    pub pull_time: Option<TimeRange>,
    /// Sort keys with `true` for descending; latest push first when empty.
    pub sort: Vec<(ArtifactSort, bool)>,
    pub page: Page,
}

/// The listed artifacts of a repository matching `search` (see the module
/// comment for what is listed), one page of them.
pub async fn search_artifacts(pool: &PgPool, search: &ArtifactSearch) -> Result<Listing<Artifact>> {
    let (limit, offset) = search.page.limit_offset();
    let (tag_exact, tag_like, tagged) = match &search.tags {
        None => (None, None, None),
        Some(TagFilter::Tagged) => (None, None, Some(true)),
        Some(TagFilter::Untagged) => (None, None, Some(false)),
        Some(TagFilter::Exact(t)) => (Some(t.clone()), None, None),
        Some(TagFilter::Contains(t)) => (None, Some(format!("%{}%", escape_like(t))), None),
    };
    let (label_ids, label_match) = match &search.labels {
        Some((ids, matching)) => (Some(ids.clone()), *matching),
        None => (None, LabelMatch::All),
    };
    let (push_from, push_to) = search.push_time.unwrap_or_default();
    let (pull_from, pull_to) = search.pull_time.unwrap_or_default();
    let filter = format!(
        "m.repository_id = $1 AND {listed}
          AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM tags ft WHERE ft.manifest_id = m.id AND ft.name = $2))
          AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM tags ft WHERE ft.manifest_id = m.id AND ft.name LIKE $3))
          AND ($4::bool IS NULL OR EXISTS (SELECT 1 FROM tags ft WHERE ft.manifest_id = m.id) = $4)
          AND ($5::text IS NULL OR m.digest = $5)
          AND ($6::bigint[] IS NULL OR {labels})
          AND ($7::timestamptz IS NULL OR {PUSH_TIME} >= $7)
          AND ($8::timestamptz IS NULL OR {PUSH_TIME} <= $8)
          AND ($9::timestamptz IS NULL OR m.pull_time >= $9)
          AND ($10::timestamptz IS NULL OR m.pull_time <= $10)",
        listed = listed("m"),
        labels = label_condition("m.id", 6, label_match),
    );
    macro_rules! bind_filter {
        ($q:expr) => {
            $q.bind(search.repository_id)
                .bind(&tag_exact)
                .bind(&tag_like)
                .bind(tagged)
                .bind(&search.digest)
                .bind(&label_ids)
                .bind(push_from)
                .bind(push_to)
                .bind(pull_from)
                .bind(pull_to)
        };
    }
    let total: i64 = bind_filter!(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {ARTIFACT_FROM} WHERE {filter}"
    ))))
    .fetch_one(pool)
    .await?;
    let mut order: Vec<String> = search
        .sort
        .iter()
        .map(|(key, desc)| key.order(*desc))
        .collect();
    if order.is_empty() {
        order.push(ArtifactSort::PushTime.order(true));
    }
    order.push("m.id DESC".into());
    let rows: Vec<ArtifactRow> = bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {ARTIFACT_FROM} WHERE {filter} ORDER BY {} LIMIT $11 OFFSET $12",
        artifact_columns(),
        order.join(", ")
    ))))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let items = assemble(pool, rows).await?;
    Ok(Listing { items, total })
}

/// The artifact `reference` (a tag or a digest) of the repository named
/// `repository`, whether listed or not; [`Error::NotFound`] if none.
pub async fn find_artifact(
    pool: &PgPool,
    repository: &RepositoryName,
    reference: &Reference,
) -> Result<Artifact> {
    let (digest, tag) = match reference {
        Reference::Digest(d) => (Some(d.to_string()), None),
        Reference::Tag(t) => (None, Some(t.as_str().to_owned())),
    };
    let row: Option<ArtifactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {ARTIFACT_FROM}
          WHERE r.name = $1
            AND (($2::text IS NOT NULL AND m.digest = $2)
              OR ($3::text IS NOT NULL AND m.id = (
                    SELECT t.manifest_id FROM tags t WHERE t.repository_id = r.id AND t.name = $3)))",
        artifact_columns()
    )))
    .bind(repository.as_str())
    .bind(digest)
    .bind(tag)
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or(Error::NotFound)?;
    let mut items = assemble(pool, vec![row]).await?;
    items.pop().ok_or(Error::NotFound)
}

async fn rows_by_id(pool: &PgPool, ids: &[i64]) -> Result<Vec<ArtifactRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {ARTIFACT_FROM} WHERE m.id = ANY($1) ORDER BY m.id",
        artifact_columns()
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Turn rows into artifacts: parse, classify, size (an index counts its
/// children, loaded here), and resolve index references.
async fn assemble(pool: &PgPool, rows: Vec<ArtifactRow>) -> Result<Vec<Artifact>> {
    let mut parsed = Vec::with_capacity(rows.len());
    for row in rows {
        let manifest = ParsedManifest::parse(Some(&row.media_type), &row.content)
            .map_err(|e| Error::Internal(format!("stored manifest {}: {e}", row.digest)))?;
        parsed.push((row, manifest));
    }
    // Children of the indexes, one query per repository involved.
    let mut wanted: HashMap<i64, HashSet<String>> = HashMap::new();
    for (row, manifest) in &parsed {
        for child in &manifest.manifests {
            wanted
                .entry(row.repository_id)
                .or_default()
                .insert(child.digest.to_string());
        }
    }
    let mut children: HashMap<(i64, String), (i64, i64)> = HashMap::new();
    for (repository_id, digests) in wanted {
        let digests: Vec<String> = digests.into_iter().collect();
        let rows: Vec<(i64, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, digest, media_type, content FROM manifests
              WHERE repository_id = $1 AND digest = ANY($2)",
        )
        .bind(repository_id)
        .bind(&digests)
        .fetch_all(pool)
        .await?;
        for (id, digest, media_type, content) in rows {
            let size = ParsedManifest::parse(Some(&media_type), &content)
                .map(|m| manifest_size(&m, content.len()))
                .unwrap_or(content.len() as i64);
            children.insert((repository_id, digest), (id, size));
        }
    }
    Ok(parsed
        .into_iter()
        .map(|(row, manifest)| {
            let mut size = manifest_size(&manifest, row.content.len());
            let mut references = Vec::new();
            for child in &manifest.manifests {
                let key = (row.repository_id, child.digest.to_string());
                let found = children.get(&key);
                if manifest.is_index() {
                    size += found.map_or(child.size as i64, |&(_, s)| s);
                }
                references.push(ArtifactReference {
                    parent_id: row.id,
                    child_id: found.map(|&(id, _)| id),
                    child_digest: child.digest.to_string(),
                    platform: child.platform.clone(),
                    annotations: child.annotations.clone(),
                    urls: child.urls.clone(),
                });
            }
            let kind = classify(&manifest);
            let media_type = if manifest.is_index() {
                if kind == ArtifactKind::Cnab {
                    CNAB_INDEX.to_owned()
                } else {
                    manifest.media_type.clone()
                }
            } else {
                manifest
                    .config
                    .as_ref()
                    .map_or_else(|| manifest.media_type.clone(), |c| c.media_type.clone())
            };
            Artifact {
                id: row.id,
                kind,
                media_type,
                manifest_media_type: manifest.media_type.clone(),
                artifact_type: row.artifact_type,
                project_id: row.project_id,
                repository_id: row.repository_id,
                repository_name: row.repository_name,
                digest: row.digest,
                size,
                push_time: row.push_time,
                pull_time: row.pull_time,
                created_at: row.created_at,
                annotations: manifest.annotations.clone(),
                subject_digest: row.subject_digest,
                references,
                extra_attrs: match row.extra_attrs {
                    Some(Value::Object(map)) => Some(map),
                    _ => None,
                },
                is_accessory: row.is_accessory,
                manifest,
            }
        })
        .collect())
}

/// A manifest's own bytes plus what it references directly (config and
/// layers; an index's children are added by the caller).
fn manifest_size(manifest: &ParsedManifest, content_len: usize) -> i64 {
    let referenced: u64 = manifest
        .config
        .iter()
        .chain(manifest.layers.iter())
        .map(|d| d.size)
        .sum();
    content_len as i64 + referenced as i64
}

/// The tags of each of these artifacts, latest pushed first.
pub async fn tags_of(pool: &PgPool, artifact_ids: &[i64]) -> Result<HashMap<i64, Vec<TagRecord>>> {
    let rows: Vec<TagRecord> = sqlx::query_as(
        "SELECT id, repository_id, manifest_id AS artifact_id, name, updated_at AS push_time,
                pull_time
           FROM tags WHERE manifest_id = ANY($1)
          ORDER BY updated_at DESC, id DESC",
    )
    .bind(artifact_ids)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<i64, Vec<TagRecord>> = HashMap::new();
    for tag in rows {
        out.entry(tag.artifact_id).or_default().push(tag);
    }
    Ok(out)
}

/// A column tags can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSort {
    Id,
    Name,
    PushTime,
    PullTime,
}

impl TagSort {
    fn order(self, desc: bool) -> String {
        let dir = if desc { "DESC" } else { "ASC" };
        match self {
            TagSort::Id => format!("id {dir}"),
            TagSort::Name => format!("name {dir}"),
            TagSort::PushTime => format!("updated_at {dir}"),
            TagSort::PullTime => format!(
                "pull_time {dir} {}",
                if desc { "NULLS LAST" } else { "NULLS FIRST" }
            ),
        }
    }
}

/// Filters, order and page for [`search_tags`].
#[derive(Debug, Clone, Default)]
pub struct TagSearch {
    pub artifact_id: i64,
    pub name: Option<TextMatch>,
    /// Sort keys; latest pushed first when empty.
    pub sort: Vec<(TagSort, bool)>,
    pub page: Page,
}

/// One artifact's tags matching `search`, one page of them.
pub async fn search_tags(pool: &PgPool, search: &TagSearch) -> Result<Listing<TagRecord>> {
    let (limit, offset) = search.page.limit_offset();
    let filter = "manifest_id = $1 AND ($2::text IS NULL OR name = $2)
          AND ($3::text IS NULL OR name LIKE $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM tags WHERE {filter}"
    )))
    .bind(search.artifact_id)
    .bind(TextMatch::exact(search.name.as_ref()))
    .bind(TextMatch::pattern(search.name.as_ref()))
    .fetch_one(pool)
    .await?;
    let mut order: Vec<String> = search.sort.iter().map(|(k, d)| k.order(*d)).collect();
    if order.is_empty() {
        order.push(TagSort::PushTime.order(true));
    }
    order.push("id DESC".into());
    let items = sqlx::query_as::<_, TagRecord>(sqlx::AssertSqlSafe(format!(
        "SELECT id, repository_id, manifest_id AS artifact_id, name, updated_at AS push_time,
                pull_time
           FROM tags WHERE {filter} ORDER BY {} LIMIT $4 OFFSET $5",
        order.join(", ")
    )))
    .bind(search.artifact_id)
    .bind(TextMatch::exact(search.name.as_ref()))
    .bind(TextMatch::pattern(search.name.as_ref()))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Listing { items, total })
}

/// The accessories of each of these artifacts (by artifact id), oldest first.
pub async fn accessories_of(
    pool: &PgPool,
    subjects: &[&Artifact],
) -> Result<HashMap<i64, Vec<Accessory>>> {
    if subjects.is_empty() {
        return Ok(HashMap::new());
    }
    let repository_ids: Vec<i64> = subjects.iter().map(|a| a.repository_id).collect();
    let digests: Vec<String> = subjects.iter().map(|a| a.digest.clone()).collect();
    let cosign_tags: Vec<String> = subjects
        .iter()
        .map(|a| cosign_signature_tag(&a.digest).unwrap_or_default())
        .collect();
    // (repository, subject digest) pairs, matched by subject or by tag.
    let pairs: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT x.repository_id, x.digest, m.id
           FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS x(repository_id, digest, cosign_tag)
           JOIN manifests m ON m.repository_id = x.repository_id AND m.digest <> x.digest
          WHERE m.subject_digest = x.digest
             OR m.id IN (SELECT t.manifest_id FROM tags t
                          WHERE t.repository_id = x.repository_id AND t.name = x.cosign_tag)
          ORDER BY m.created_at, m.id",
    )
    .bind(&repository_ids)
    .bind(&digests)
    .bind(&cosign_tags)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = pairs.iter().map(|(_, _, id)| *id).collect();
    let artifacts: HashMap<i64, Artifact> = assemble(pool, rows_by_id(pool, &ids).await?)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let subject_ids: HashMap<(i64, &str), i64> = subjects
        .iter()
        .map(|a| ((a.repository_id, a.digest.as_str()), a.id))
        .collect();
    let mut out: HashMap<i64, Vec<Accessory>> = HashMap::new();
    for (repository_id, digest, id) in pairs {
        let (Some(artifact), Some(&subject_id)) = (
            artifacts.get(&id),
            subject_ids.get(&(repository_id, digest.as_str())),
        ) else {
            continue;
        };
        let accessory_type = if artifact.subject_digest.as_deref() == Some(digest.as_str()) {
            accessory_type(&artifact.kind, artifact.artifact_type.as_deref())
        } else {
            "signature.cosign"
        };
        out.entry(subject_id).or_default().push(Accessory {
            artifact: artifact.clone(),
            accessory_type,
            subject_id,
            subject_digest: digest,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Extra attributes and additions (read from blobs).

/// Fill in `extra_attrs` of each artifact: from the cache column, else from
/// its config blob (then cached). An artifact whose config cannot be read
/// right now gets an empty map, not cached.
pub async fn with_extra_attrs(
    pool: &PgPool,
    registry: &Registry,
    artifacts: &mut [Artifact],
) -> Result<()> {
    for artifact in artifacts.iter_mut() {
        if artifact.extra_attrs.is_some() {
            continue;
        }
        let derived = match derive_extra_attrs(registry, artifact).await {
            Ok(derived) => derived,
            Err(e) => {
                tracing::warn!(artifact = artifact.id, error = %e, "cannot read an artifact's config");
                None
            }
        };
        match derived {
            Some(map) => {
                sqlx::query(
                    "UPDATE manifests SET extra_attrs = $2 WHERE id = $1 AND extra_attrs IS NULL",
                )
                .bind(artifact.id)
                .bind(Value::Object(map.clone()))
                .execute(pool)
                .await?;
                artifact.extra_attrs = Some(map);
            }
            None => artifact.extra_attrs = Some(Map::new()),
        }
    }
    Ok(())
}

/// What Harbor keeps as `extra_attrs`: for an image its architecture, os,
/// config, creation time and author; for a chart, a CNAB or another typed
/// artifact the whole config object. `Some(empty)` when there is nothing
/// to derive; `None` when the config is not readable now.
async fn derive_extra_attrs(
    registry: &Registry,
    artifact: &Artifact,
) -> Result<Option<Map<String, Value>>> {
    let wants_config = !artifact.is_index()
        && matches!(
            artifact.kind,
            ArtifactKind::Image
                | ArtifactKind::Chart
                | ArtifactKind::Cnab
                | ArtifactKind::Wasm
                | ArtifactKind::Other(_)
        );
    let Some(config) = artifact.manifest.config.as_ref().filter(|_| wants_config) else {
        return Ok(Some(Map::new()));
    };
    let Some(value) = read_config(registry, artifact, &config.digest).await? else {
        return Ok(None);
    };
    let Value::Object(object) = value else {
        return Ok(Some(Map::new()));
    };
    if artifact.kind != ArtifactKind::Image {
        return Ok(Some(object));
    }
    let mut attrs = Map::new();
    for key in ["created", "architecture", "os"] {
        attrs.insert(key.into(), object.get(key).cloned().unwrap_or(Value::Null));
    }
    if let Some(variant) = object.get("variant") {
        attrs.insert("variant".into(), variant.clone());
    }
    let runtime = object.get("config").cloned().unwrap_or(Value::Null);
    let mut author = object
        .get("author")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if author.is_empty() {
        for label in ["org.opencontainers.image.authors", "maintainer"] {
            if let Some(value) = runtime
                .get("Labels")
                .and_then(|l| l.get(label))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                author = value.to_owned();
                break;
            }
        }
    }
    attrs.insert("config".into(), runtime);
    attrs.insert("author".into(), Value::String(author));
    Ok(Some(attrs))
}

/// The artifact's config blob as JSON; `None` if it cannot be read now.
async fn read_config(
    registry: &Registry,
    artifact: &Artifact,
    digest: &Digest,
) -> Result<Option<Value>> {
    let repository = RepositoryName::parse(&artifact.repository_name)
        .map_err(|e| Error::Internal(e.to_string()))?;
    match registry
        .read_blob(&repository, digest, CONFIG_LIMIT)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    {
        BlobContent::Bytes(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).unwrap_or(Value::Object(Map::new())),
        )),
        BlobContent::TooLarge { .. } => Ok(Some(Value::Object(Map::new()))),
        BlobContent::Missing => Ok(None),
    }
}

/// The addition `addition` of `artifact`; `None` if the artifact has no
/// such addition (wrong type, or a chart without that file).
pub async fn addition(
    registry: &Registry,
    artifact: &Artifact,
    addition: Addition,
) -> Result<Option<AdditionContent>> {
    if !artifact.additions().contains(&addition) {
        return Ok(None);
    }
    let Some(config) = artifact.manifest.config.as_ref() else {
        return Ok(None);
    };
    match addition {
        Addition::BuildHistory => {
            let Some(config) = read_config(registry, artifact, &config.digest).await? else {
                return Ok(None);
            };
            let history = config
                .get("history")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            Ok(Some(AdditionContent {
                content_type: "application/json; charset=utf-8",
                body: serde_json::to_vec(&history).map_err(|e| Error::Internal(e.to_string()))?,
            }))
        }
        Addition::Dependencies => {
            let Some(config) = read_config(registry, artifact, &config.digest).await? else {
                return Ok(None);
            };
            let dependencies = config
                .get("dependencies")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            Ok(Some(AdditionContent {
                content_type: "application/json; charset=utf-8",
                body: serde_json::to_vec(&dependencies)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            }))
        }
        Addition::Values | Addition::Readme => {
            let Some(archive) = chart_archive(registry, artifact).await? else {
                return Ok(None);
            };
            let (file, content_type) = match addition {
                Addition::Values => ("values.yaml", "text/plain; charset=utf-8"),
                _ => ("readme.md", "text/markdown; charset=utf-8"),
            };
            Ok(chart_file(&archive, file)?.map(|body| AdditionContent { content_type, body }))
        }
    }
}

/// The bytes of a chart's archive layer.
async fn chart_archive(registry: &Registry, artifact: &Artifact) -> Result<Option<Vec<u8>>> {
    let config_digest = artifact.manifest.config.as_ref().map(|c| &c.digest);
    let layers = &artifact.manifest.layers;
    let Some(layer) = layers
        .iter()
        .find(|l| l.media_type == HELM_CHART_LAYER)
        .or_else(|| layers.iter().find(|l| Some(&l.digest) != config_digest))
    else {
        return Ok(None);
    };
    let repository = RepositoryName::parse(&artifact.repository_name)
        .map_err(|e| Error::Internal(e.to_string()))?;
    match registry
        .read_blob(&repository, &layer.digest, CHART_LIMIT)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    {
        BlobContent::Bytes(bytes) => Ok(Some(bytes.to_vec())),
        BlobContent::Missing => Ok(None),
        BlobContent::TooLarge { size } => Err(Error::Invalid(format!(
            "the chart archive is {size} bytes, more than the {CHART_LIMIT} bytes Wharf reads"
        ))),
    }
}

/// The file `name` (compared case-insensitively) at the top of the chart's
/// directory in a `.tgz` chart archive (`<chart>/values.yaml`).
pub fn chart_file(archive: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    let bad = |e: std::io::Error| Error::Invalid(format!("the chart archive is unreadable: {e}"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let parts: Vec<_> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => p.to_str(),
                _ => None,
            })
            .collect();
        if parts.len() != 2 || !parts[1].eq_ignore_ascii_case(name) {
            continue;
        }
        let mut body = Vec::new();
        entry
            .take(CHART_FILE_LIMIT)
            .read_to_end(&mut body)
            .map_err(bad)?;
        return Ok(Some(body));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Pull times.

/// One served pull, as the pull-event queue hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// The full repository name.
    pub repository: String,
    /// The digest served.
    pub digest: String,
    /// The tag it was pulled by, if any.
    pub tag: Option<String>,
}

/// Record a batch of pulls in one statement: the artifacts' and tags' pull
/// times become now, each repository's pull count grows by its pulls.
pub async fn record_pulls(db: impl PgExecutor<'_>, pulls: &[Pull]) -> Result<()> {
    if pulls.is_empty() {
        return Ok(());
    }
    let repositories: Vec<&str> = pulls.iter().map(|p| p.repository.as_str()).collect();
    let digests: Vec<&str> = pulls.iter().map(|p| p.digest.as_str()).collect();
    let tags: Vec<Option<&str>> = pulls.iter().map(|p| p.tag.as_deref()).collect();
    sqlx::query(
        "WITH x AS (
            SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) AS x(repository, digest, tag)
         ), r AS (
            UPDATE repositories r SET pull_count = r.pull_count + c.n
              FROM (SELECT repository, count(*) AS n FROM x GROUP BY repository) c
             WHERE r.name = c.repository
            RETURNING r.id, r.name
         ), m AS (
            UPDATE manifests m SET pull_time = now()
              FROM r, (SELECT DISTINCT repository, digest FROM x) d
             WHERE r.name = d.repository AND m.repository_id = r.id AND m.digest = d.digest
            RETURNING m.id
         )
         UPDATE tags t SET pull_time = now()
           FROM r, (SELECT DISTINCT repository, tag FROM x WHERE tag IS NOT NULL) d
          WHERE r.name = d.repository AND t.repository_id = r.id AND t.name = d.tag",
    )
    .bind(&repositories)
    .bind(&digests)
    .bind(&tags)
    .execute(db)
    .await?;
    Ok(())
}

/// Why [`delete_with_dependents`] could not delete the artifact itself.
#[derive(Debug)]
pub enum DeleteFailure {
    /// The registry refused or failed (`MANIFEST_UNKNOWN` when it is already
    /// gone, `DENIED` from admission: an immutable tag).
    Registry(wharf_registry::RegistryError),
    /// Looking up what it held failed.
    Database(Error),
}

/// Whether an index of the artifact's repository lists it as a child:
/// deleting it would break that index.
pub async fn listed_by_index(pool: &PgPool, artifact: &Artifact) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM manifest_references mr JOIN manifests p ON p.id = mr.manifest_id
                         WHERE mr.kind = 'manifest' AND mr.digest = $2 AND p.repository_id = $1
                           AND p.id <> $3)",
    )
    .bind(artifact.repository_id)
    .bind(&artifact.digest)
    .bind(artifact.id)
    .fetch_one(pool)
    .await?)
}

/// The children and accessories of an artifact (the flag says which are
/// accessories).
async fn dependents(
    pool: &PgPool,
    name: &RepositoryName,
    artifact: &Artifact,
) -> Result<Vec<(Artifact, bool)>> {
    let mut out = Vec::new();
    for reference in &artifact.references {
        if let Ok(digest) = Digest::parse(&reference.child_digest)
            && let Ok(child) = find_artifact(pool, name, &Reference::Digest(digest)).await
        {
            out.push((child, false));
        }
    }
    for accessory in accessories_of(pool, &[artifact])
        .await?
        .remove(&artifact.id)
        .unwrap_or_default()
    {
        out.push((accessory.artifact, true));
    }
    Ok(out)
}

/// Delete an artifact the way Harbor's model does: the manifest with its
/// tags (through [`Registry::delete`], so admission, quota and the audit
/// log apply), then its accessories and the index children nothing else
/// holds, recursively. Returns the digests deleted along with it. Failures
/// after the artifact itself is gone leave garbage for the collector, not a
/// broken artifact, so they are logged rather than returned.
pub async fn delete_with_dependents(
    pool: &PgPool,
    registry: &Registry,
    name: &RepositoryName,
    artifact: Artifact,
    actor: wharf_registry::seams::Principal,
) -> std::result::Result<Vec<String>, DeleteFailure> {
    delete_digest(registry, name, &artifact.digest, actor.clone())
        .await
        .map_err(DeleteFailure::Registry)?;
    let mut deleted = Vec::new();
    let mut pending = dependents(pool, name, &artifact)
        .await
        .map_err(DeleteFailure::Database)?;
    while let Some((dependent, is_accessory)) = pending.pop() {
        let orphan = is_accessory || {
            let tagged = !tags_of(pool, &[dependent.id])
                .await
                .map_err(DeleteFailure::Database)?
                .is_empty();
            let listed = listed_by_index(pool, &dependent)
                .await
                .map_err(DeleteFailure::Database)?;
            !tagged && !listed
        };
        if !orphan {
            continue;
        }
        match delete_digest(registry, name, &dependent.digest, actor.clone()).await {
            Ok(()) => {
                deleted.push(dependent.digest.clone());
                pending.extend(
                    dependents(pool, name, &dependent)
                        .await
                        .map_err(DeleteFailure::Database)?,
                );
            }
            Err(e) => {
                tracing::warn!(artifact = %dependent.digest, error = %e,
                    "could not delete what a deleted artifact held");
            }
        }
    }
    Ok(deleted)
}

async fn delete_digest(
    registry: &Registry,
    name: &RepositoryName,
    digest: &str,
    actor: wharf_registry::seams::Principal,
) -> std::result::Result<(), wharf_registry::RegistryError> {
    let digest = Digest::parse(digest).map_err(|e| {
        wharf_registry::RegistryError::code(wharf_oci::ErrorCode::DigestInvalid, e.to_string())
    })?;
    registry
        .delete(name, &Reference::Digest(digest), actor)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> ParsedManifest {
        ParsedManifest::parse(None, &serde_json::to_vec(&json).unwrap()).unwrap()
    }

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    fn manifest(
        config_type: &str,
        layer_type: &str,
        artifact_type: Option<&str>,
    ) -> ParsedManifest {
        let mut json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": D, "size": 2},
            "layers": [{"mediaType": layer_type, "digest": D, "size": 2}],
        });
        if let Some(t) = artifact_type {
            json["artifactType"] = t.into();
        }
        parse(json)
    }

    #[test]
    fn types_come_from_artifact_type_then_config() {
        let image = manifest(
            media_types::OCI_CONFIG,
            media_types::OCI_LAYER_TAR_GZIP,
            None,
        );
        assert_eq!(classify(&image), ArtifactKind::Image);
        let docker = manifest(
            media_types::DOCKER_CONFIG,
            media_types::DOCKER_LAYER_TAR_GZIP,
            None,
        );
        assert_eq!(classify(&docker), ArtifactKind::Image);
        assert_eq!(
            classify(&manifest(HELM_CONFIG, HELM_CHART_LAYER, None)),
            ArtifactKind::Chart
        );
        assert_eq!(
            classify(&manifest(
                media_types::OCI_EMPTY,
                "application/x",
                Some(NOTATION_SIGNATURE)
            )),
            ArtifactKind::NotationSignature
        );
        assert_eq!(
            classify(&manifest(
                media_types::OCI_EMPTY,
                "application/x",
                Some(COSIGN_SIGNATURE)
            )),
            ArtifactKind::CosignSignature
        );
        assert_eq!(
            classify(&manifest(
                media_types::OCI_CONFIG,
                COSIGN_SIMPLESIGNING,
                None
            )),
            ArtifactKind::CosignSignature
        );
        assert_eq!(
            classify(&manifest(
                media_types::OCI_EMPTY,
                "application/spdx+json",
                Some("application/spdx+json")
            )),
            ArtifactKind::Sbom
        );
        assert_eq!(
            classify(&manifest(
                "application/vnd.acme.model.config.v1alpha1+json",
                "application/x",
                None
            )),
            ArtifactKind::Other("MODEL".into())
        );
        assert_eq!(
            classify(&manifest(
                media_types::OCI_EMPTY,
                "application/x",
                Some("application/x-thing")
            )),
            ArtifactKind::Unknown
        );
    }

    #[test]
    fn indexes_are_images_unless_they_say_otherwise() {
        let index = parse(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": [{"mediaType": media_types::OCI_MANIFEST, "digest": D, "size": 2}],
        }));
        assert_eq!(classify(&index), ArtifactKind::Image);
        let cnab = parse(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": [],
            "annotations": {"org.opencontainers.artifactType": CNAB_INDEX},
        }));
        assert_eq!(classify(&cnab), ArtifactKind::Cnab);
    }

    #[test]
    fn vendor_config_names() {
        assert_eq!(
            vendor_config_name("application/vnd.caicloud.model.config.v1alpha1+json").as_deref(),
            Some("MODEL")
        );
        assert_eq!(
            vendor_config_name("application/vnd.oci.image.config.v1+json").as_deref(),
            Some("IMAGE")
        );
        assert_eq!(vendor_config_name("application/json"), None);
        assert_eq!(vendor_config_name("application/vnd.x.config+json"), None);
    }

    #[test]
    fn accessory_types_follow_harbor() {
        assert_eq!(
            accessory_type(&ArtifactKind::CosignSignature, None),
            "signature.cosign"
        );
        assert_eq!(
            accessory_type(&ArtifactKind::NotationSignature, None),
            "signature.notation"
        );
        assert_eq!(
            accessory_type(&ArtifactKind::Sbom, Some(HARBOR_SBOM)),
            "sbom.harbor"
        );
        assert_eq!(
            accessory_type(&ArtifactKind::Sbom, Some("application/spdx+json")),
            "subject.accessory"
        );
        assert_eq!(
            accessory_type(&ArtifactKind::Image, None),
            "subject.accessory"
        );
        assert_eq!(
            cosign_signature_tag(D).unwrap(),
            format!("sha256-{}.sig", &D[7..])
        );
    }

    #[test]
    fn additions_parse_case_insensitively() {
        assert_eq!(
            Addition::parse("BUILD_HISTORY"),
            Some(Addition::BuildHistory)
        );
        assert_eq!(Addition::parse("values.yaml"), Some(Addition::Values));
        assert_eq!(Addition::parse("README.MD"), Some(Addition::Readme));
        assert_eq!(Addition::parse("vulnerabilities"), None);
        assert!(ArtifactKind::Image.additions(true).is_empty());
        assert_eq!(
            ArtifactKind::Image.additions(false),
            &[Addition::BuildHistory]
        );
    }
}
