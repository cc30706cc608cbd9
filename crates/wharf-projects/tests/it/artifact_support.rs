//! Pushing real content through the `/v2` registry of an
//! [`ApiApp::spawn_with_registry`] app: blobs, images, indexes, Helm charts
//! (with a `.tgz` built here), referrers and legacy cosign signatures.

#![allow(dead_code)]

use std::io::Write as _;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::api_support::{ApiApp, json_body, text};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A descriptor of pushed content.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
    pub media_type: String,
}

impl Pushed {
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

fn v2(app: &ApiApp, path: &str) -> String {
    format!("{}/v2/{path}", app.base)
}

/// Push a blob monolithically.
pub async fn push_blob(app: &ApiApp, repo: &str, bytes: &[u8], media_type: &str) -> Pushed {
    let digest = sha256(bytes);
    let resp = app
        .client
        .post(v2(app, &format!("{repo}/blobs/uploads/?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "blob push: {}", text(resp).await);
    Pushed {
        digest,
        size: bytes.len(),
        media_type: media_type.to_owned(),
    }
}

/// PUT a manifest under `reference` (a tag or its digest).
pub async fn put_manifest(
    app: &ApiApp,
    repo: &str,
    reference: &str,
    manifest: &Value,
) -> reqwest::Response {
    let body = serde_json::to_vec(manifest).unwrap();
    let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
    app.client
        .put(v2(app, &format!("{repo}/manifests/{reference}")))
        .header("Content-Type", media_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Push a manifest under `tag`, or by its digest when `tag` is `None`.
pub async fn push_manifest(
    app: &ApiApp,
    repo: &str,
    tag: Option<&str>,
    manifest: &Value,
) -> Pushed {
    let body = serde_json::to_vec(manifest).unwrap();
    let digest = sha256(&body);
    let reference = tag.unwrap_or(&digest).to_owned();
    let resp = put_manifest(app, repo, &reference, manifest).await;
    assert_eq!(resp.status(), 201, "manifest push: {}", text(resp).await);
    Pushed {
        digest,
        size: body.len(),
        media_type: manifest["mediaType"]
            .as_str()
            .unwrap_or(OCI_MANIFEST)
            .to_owned(),
    }
}

/// The config of a test image: `architecture`/`os` and a two-step history.
pub fn image_config(architecture: &str) -> Value {
    json!({
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-02T03:04:05Z",
        "author": "wharf tests",
        "config": {"Env": ["PATH=/bin"], "Labels": {"unique": uuid::Uuid::new_v4().to_string()}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created": "2026-01-02T03:04:00Z", "created_by": "ADD rootfs.tar /"},
            {"created": "2026-01-02T03:04:05Z", "created_by": "CMD [\"sh\"]", "empty_layer": true},
        ],
    })
}

/// An image with one layer: (manifest, config, layer) as pushed.
pub struct Image {
    pub manifest: Pushed,
    pub config: Pushed,
    pub layer: Pushed,
}

/// Push an image (config from [`image_config`] and one random layer),
/// tagged `tag` or by digest.
pub async fn push_image(app: &ApiApp, repo: &str, tag: Option<&str>, architecture: &str) -> Image {
    let config = serde_json::to_vec(&image_config(architecture)).unwrap();
    let config = push_blob(app, repo, &config, OCI_CONFIG).await;
    let layer = format!("layer {}", uuid::Uuid::new_v4()).into_bytes();
    let layer = push_blob(app, repo, &layer, LAYER).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let manifest = push_manifest(app, repo, tag, &manifest).await;
    Image {
        manifest,
        config,
        layer,
    }
}

/// Push an index of `children` (with their platforms) tagged `tag`.
pub async fn push_index(
    app: &ApiApp,
    repo: &str,
    tag: &str,
    children: &[(&Pushed, &str)],
) -> Pushed {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(child, arch)| {
            let mut d = child.descriptor();
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    push_manifest(app, repo, Some(tag), &index).await
}

/// A Helm chart archive: `<name>/Chart.yaml`, `values.yaml`, `README.md`
/// and a template, gzipped.
pub fn chart_tgz(name: &str, version: &str, values: &str, readme: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let files = [
        (
            "Chart.yaml",
            format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        ),
        ("values.yaml", values.to_owned()),
        ("README.md", readme.to_owned()),
        (
            "templates/configmap.yaml",
            "kind: ConfigMap\napiVersion: v1\n".to_owned(),
        ),
    ];
    for (path, body) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{name}/{path}"), body.as_bytes())
            .unwrap();
    }
    let archive = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&archive).unwrap();
    gz.finish().unwrap()
}

/// Push a Helm chart as `helm push` does: a JSON Chart.yaml as config and
/// the `.tgz` as the one layer, tagged with its version.
pub async fn push_chart(app: &ApiApp, repo: &str, name: &str, version: &str) -> Pushed {
    let config = json!({
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "description": "a chart for tests",
        "dependencies": [{"name": "redis", "version": "17.0.0", "repository": "https://charts.example"}],
    });
    let config = push_blob(
        app,
        repo,
        &serde_json::to_vec(&config).unwrap(),
        HELM_CONFIG,
    )
    .await;
    let archive = chart_tgz(name, version, "replicas: 3\n", "# The chart\n");
    let layer = push_blob(app, repo, &archive, HELM_LAYER).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    push_manifest(app, repo, Some(version), &manifest).await
}

/// Push an OCI 1.1 artifact of `artifact_type` (empty config, one layer),
/// with `subject` when given, by digest or under `tag`.
pub async fn push_artifact(
    app: &ApiApp,
    repo: &str,
    artifact_type: &str,
    subject: Option<&Pushed>,
    tag: Option<&str>,
) -> Pushed {
    let empty = push_blob(app, repo, b"{}", OCI_EMPTY).await;
    let payload = format!("payload {}", uuid::Uuid::new_v4()).into_bytes();
    let layer = push_blob(app, repo, &payload, "application/octet-stream").await;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [layer.descriptor()],
    });
    if let Some(subject) = subject {
        manifest["subject"] = subject.descriptor();
    }
    push_manifest(app, repo, tag, &manifest).await
}

/// Push a cosign signature the legacy way: tagged `sha256-<hex>.sig`, an
/// image config and a simplesigning layer, no subject.
pub async fn push_legacy_cosign(app: &ApiApp, repo: &str, subject: &Pushed) -> Pushed {
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let config = push_blob(app, repo, &config, OCI_CONFIG).await;
    let payload = json!({"critical": {"image": {"docker-manifest-digest": subject.digest}}});
    let layer = push_blob(
        app,
        repo,
        &serde_json::to_vec(&payload).unwrap(),
        "application/vnd.dev.cosign.simplesigning.v1+json",
    )
    .await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let tag = subject.digest.replace(':', "-") + ".sig";
    push_manifest(app, repo, Some(&tag), &manifest).await
}

/// GET a manifest through `/v2` (a pull).
pub async fn pull(app: &ApiApp, repo: &str, reference: &str) -> reqwest::Response {
    app.client
        .get(v2(app, &format!("{repo}/manifests/{reference}")))
        .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap()
}

/// The artifact API path of `repo` (full name) in `project`, with the rest
/// of the repository name encoded twice.
pub fn artifacts_path(repo: &str) -> String {
    let (project, rest) = repo.split_once('/').unwrap();
    format!(
        "/projects/{project}/repositories/{}/artifacts",
        rest.replace('/', "%252F")
    )
}

/// GET an artifact as admin, asserting 200.
pub async fn get_artifact(app: &ApiApp, repo: &str, reference: &str, query: &str) -> Value {
    let resp = app
        .as_admin(
            app.client
                .get(app.url(&format!("{}/{reference}{query}", artifacts_path(repo)))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "get artifact {repo} {reference}");
    json_body(resp).await
}
