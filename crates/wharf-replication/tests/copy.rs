//! The copy engine against real Debian `docker-registry` (distribution 2.8)
//! instances on loopback, one behind htpasswd Basic auth, checked with
//! skopeo (an independent client) on the destination.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use wharf_replication::client::sha256_digest;
use wharf_replication::copy::TagOutcome;
use wharf_replication::{
    Copier, CopyOptions, Endpoint, Filters, RegistryClient, destination_repository,
};

mod support;
use support::*;

fn skopeo_copy_to_dir(reference: &str, creds: Option<&str>, dir: &Path) -> std::process::Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--all", "--src-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--src-creds", c]);
    }
    cmd.arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dir.display()))
        .output()
        .expect("skopeo")
}

fn host(reg: &Distribution) -> &str {
    reg.base.trim_start_matches("http://")
}

#[tokio::test]
async fn push_replication_of_filtered_repositories_to_basic_auth_registry() {
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(true);
    let src = client(&src_reg, false);
    let dst = client(&dst_reg, true);
    let shared = random(300_000);
    push_image(
        &src,
        "library/app",
        "v1",
        &[shared.clone(), random(200_000)],
    )
    .await;
    push_image(
        &src,
        "library/app",
        "v2",
        &[shared.clone(), random(100_000)],
    )
    .await;
    push_image(&src, "library/app", "latest", &[random(1000)]).await;
    push_image(
        &src,
        "library/tool",
        "v1",
        &[shared.clone(), random(50_000)],
    )
    .await;
    push_image(&src, "other/app", "v1", &[random(1000)]).await;

    let filters = Filters::new(Some("library/**"), Some("v*")).unwrap();
    let copier = Copier::new(
        src.clone(),
        dst.clone(),
        CopyOptions {
            parallel_blobs: 3,
            ..Default::default()
        },
    );
    let mut copied = Vec::new();
    for repo in src.catalog().await.unwrap() {
        if !filters.repository(&repo) {
            continue;
        }
        let target = destination_repository(&repo, Some("dr"), 1);
        for tag in copier.artifact_tags(&repo).await.unwrap() {
            if filters.tag(&tag) {
                copier.copy_tag(&repo, &target, &tag).await.unwrap();
                copied.push(format!("{target}:{tag}"));
            }
        }
    }
    copied.sort();
    assert_eq!(copied, ["dr/app:v1", "dr/app:v2", "dr/tool:v1"]);
    let mut dst_repos = dst.catalog().await.unwrap();
    dst_repos.sort();
    assert_eq!(dst_repos, ["dr/app", "dr/tool"]);
    let mut tags = dst.tags("dr/app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"], "latest is filtered out");

    let report = copier.report();
    let mut unique = report.transferred.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        report.transferred.len(),
        "a blob was transferred twice: {report:?}"
    );
    assert!(
        report.blobs_mounted >= 1,
        "the shared layer must be mounted into dr/tool: {report:?}"
    );
    assert!(
        report.blobs_present >= 1,
        "dr/app:v2 finds the shared layer present: {report:?}"
    );

    // An independent client pulls every copied image from the destination.
    let out_dir = tempfile::tempdir().unwrap();
    let out = skopeo_copy_to_dir(
        &format!("{}/dr/tool:v1", host(&dst_reg)),
        Some(&format!("{USER}:{PASSWORD}")),
        &out_dir.path().join("tool"),
    );
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second run finds everything there and transfers nothing.
    let again = Copier::new(src.clone(), dst.clone(), CopyOptions::default());
    let outcome = again.copy_tag("library/app", "dr/app", "v1").await.unwrap();
    assert!(
        matches!(outcome, TagOutcome::UpToDate { .. }),
        "{outcome:?}"
    );
    assert_eq!(again.report().bytes_copied, 0);

    // A changed source tag is kept on the destination without override,
    // replaced with it.
    push_image(&src, "library/app", "v1", &[random(10_000)]).await;
    let keep = Copier::new(src.clone(), dst.clone(), CopyOptions::default());
    assert!(matches!(
        keep.copy_tag("library/app", "dr/app", "v1").await.unwrap(),
        TagOutcome::Kept { .. }
    ));
    let replace = Copier::new(
        src.clone(),
        dst.clone(),
        CopyOptions {
            override_tags: true,
            ..Default::default()
        },
    );
    let new = src
        .head_manifest("library/app", "v1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        replace
            .copy_tag("library/app", "dr/app", "v1")
            .await
            .unwrap(),
        TagOutcome::Copied {
            digest: new.clone()
        }
    );
    assert_eq!(dst.head_manifest("dr/app", "v1").await.unwrap(), Some(new));

    // Replicated deletion.
    assert!(replace.delete_tag("dr/app", "v2").await.unwrap());
    assert_eq!(dst.head_manifest("dr/app", "v2").await.unwrap(), None);
    assert!(!replace.delete_tag("dr/app", "v2").await.unwrap());
}

#[tokio::test]
async fn pull_replication_from_basic_auth_registry_chunked_and_throttled() {
    let src_reg = start_distribution(true);
    let dst_reg = start_distribution(false);
    let src = client(&src_reg, true);
    let dst = client(&dst_reg, false);
    let big = random(700_000);
    let image = push_image(&src, "team/web", "1.0", &[big.clone(), random(3000)]).await;

    let copier = Copier::new(
        src.clone(),
        dst.clone(),
        CopyOptions {
            chunk_size: Some(256 * 1024),
            speed_kib: Some(4096),
            ..Default::default()
        },
    );
    let outcome = copier
        .copy_tag("team/web", "team/web", "1.0")
        .await
        .unwrap();
    assert_eq!(
        outcome,
        TagOutcome::Copied {
            digest: image.digest.clone()
        }
    );
    assert_eq!(copier.report().blobs_copied, 3);
    let fetched = dst.get_manifest("team/web", "1.0").await.unwrap().unwrap();
    assert_eq!(
        fetched.digest, image.digest,
        "the manifest is copied byte for byte"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = skopeo_copy_to_dir(
        &format!("{}/team/web:1.0", host(&dst_reg)),
        None,
        &out_dir.path().join("web"),
    );
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = sha256_digest(&big);
    let on_disk = std::fs::read(
        out_dir
            .path()
            .join("web")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(on_disk.len(), big.len());

    // Wrong credentials end with a clear error, not a retry loop.
    let bad = Arc::new(
        RegistryClient::new(
            Endpoint::new(&src_reg.base)
                .unwrap()
                .with_basic(USER, "wrong"),
        )
        .unwrap(),
    );
    let err = Copier::new(bad.clone(), dst.clone(), CopyOptions::default())
        .copy_tag("team/web", "team/web", "1.0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!err.is_transient());
    assert!(bad.ping().await.is_err());
    assert!(src.ping().await.is_ok());

    let missing = copier
        .copy_tag("team/web", "team/web", "nope")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("team/web:nope not found"),
        "{missing}"
    );
}

#[tokio::test]
async fn index_children_and_signature_follow_their_subject() {
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(true);
    let src = client(&src_reg, false);
    let dst = client(&dst_reg, true);
    let amd = push_image(&src, "app", "amd64-only", &[random(20_000)]).await;
    let arm = push_image(&src, "app", "arm64-only", &[random(20_000)]).await;
    let index = put(
        &src,
        "app",
        "multi",
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": amd.media_type, "digest": amd.digest, "size": amd.bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": arm.media_type, "digest": arm.digest, "size": arm.bytes.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ]}),
    )
    .await;
    // A cosign-style signature: a manifest whose subject is the index,
    // tagged `sha256-<hex>.sig` (distribution 2.8 has no referrers API).
    let payload = random(500);
    let layer = push_blob(&src, "app", &payload).await;
    let empty = Bytes::from_static(b"{}");
    let mut cfg = push_blob(&src, "app", &empty).await;
    cfg["mediaType"] = json!("application/vnd.oci.empty.v1+json");
    let sig_tag = format!("sha256-{}.sig", index.digest.trim_start_matches("sha256:"));
    let sig = put(
        &src,
        "app",
        &sig_tag,
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json", "config": cfg, "layers": [layer],
            "subject": {"mediaType": index.media_type, "digest": index.digest, "size": index.bytes.len()}}),
    )
    .await;

    let copier = Copier::new(src.clone(), dst.clone(), CopyOptions::default());
    let tags = copier.artifact_tags("app").await.unwrap();
    assert!(
        !tags.contains(&sig_tag),
        "accessory tags are not artifacts: {tags:?}"
    );
    copier.copy_tag("app", "mirror/app", "multi").await.unwrap();
    let mut dst_tags = dst.tags("mirror/app").await.unwrap();
    dst_tags.sort();
    assert_eq!(
        dst_tags,
        ["multi".to_owned(), sig_tag.clone()],
        "children are copied by digest, untagged"
    );
    for child in [&amd.digest, &arm.digest, &sig.digest] {
        assert!(
            dst.head_manifest("mirror/app", child)
                .await
                .unwrap()
                .is_some(),
            "{child} missing"
        );
    }
    assert!(
        dst.blob_exists("mirror/app", &sha256_digest(&payload))
            .await
            .unwrap()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = skopeo_copy_to_dir(
        &format!("{}/mirror/app:multi", host(&dst_reg)),
        Some(&format!("{USER}:{PASSWORD}")),
        &out_dir.path().join("multi"),
    );
    assert!(
        out.status.success(),
        "skopeo --all: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
