//! Real container tools against a running registry: skopeo pushes, inspects,
//! lists, pulls back and deletes; buildah pushes and podman pulls. Digests must
//! survive every round trip unchanged.

mod support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;
use support::{
    Backend, Image, Oci, Rng, Server, oci_layout_blob, oci_layout_descriptor, run, sha256_digest,
    tool,
};

/// A policy that accepts any image, so the tools never depend on the host's
/// `/etc/containers/policy.json`.
fn write_policy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("policy.json");
    std::fs::write(&path, br#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("policy");
    path
}

struct Skopeo {
    bin: std::path::PathBuf,
    policy: std::path::PathBuf,
    /// `user:password` for the registry (the e2e administrator).
    creds: String,
}

impl Skopeo {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--policy").arg(&self.policy);
        cmd
    }

    fn copy(&self, extra: &[&str], from: &str, to: &str) {
        let mut cmd = self.cmd();
        cmd.args(["copy", "--retry-times", "0", "--preserve-digests"])
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"]);
        if from.starts_with("docker://") {
            cmd.args(["--src-creds", &self.creds]);
        }
        if to.starts_with("docker://") {
            cmd.args(["--dest-creds", &self.creds]);
        }
        cmd.args(extra).arg(from).arg(to);
        run(&mut cmd).expect("skopeo copy");
    }

    fn inspect(&self, raw: bool, image: &str) -> Vec<u8> {
        let mut cmd = self.cmd();
        cmd.args(["inspect", "--tls-verify=false", "--retry-times", "0"])
            .args(["--creds", &self.creds]);
        if raw {
            cmd.arg("--raw");
        }
        run(cmd.arg(image)).expect("skopeo inspect")
    }

    fn list_tags(&self, repo: &str) -> Vec<String> {
        let out = run(self.cmd().args([
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &self.creds,
            repo,
        ]))
        .expect("skopeo list-tags");
        let v: Value = serde_json::from_slice(&out).expect("list-tags json");
        v["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    }
}

fn skopeo(dir: &Path) -> Option<Skopeo> {
    Some(Skopeo {
        bin: tool("skopeo")?,
        policy: write_policy(dir),
        creds: format!("{}:{}", support::E2E_ADMIN.0, support::E2E_ADMIN.1),
    })
}

/// Every blob of `image` is in the layout at `dir` with its digest.
fn assert_layout_holds(dir: &Path, image: &Image) {
    assert_eq!(
        oci_layout_blob(dir, &image.manifest.digest).expect("manifest"),
        image.manifest.bytes
    );
    for blob in image.blobs() {
        oci_layout_blob(dir, &blob.digest).expect("blob in pulled layout");
    }
}

async fn started() -> (Backend, Server) {
    let backend = Backend::new().await;
    let server = backend.start().await;
    (backend, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_inspects_pulls_and_deletes_an_image() {
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = skopeo(work.path()) else {
        return;
    };
    let (_backend, server) = started().await;
    let oci = Oci::new();
    let mut rng = Rng::new();
    let image = support::random_image(&mut rng, 4, 384 * 1024, "amd64");
    let layout = work.path().join("src");
    support::write_oci_layout(&layout, "v1", &image.manifest, image.blobs()).unwrap();
    let remote = format!("docker://{}/library/app", server.host());

    skopeo.copy(
        &[],
        &format!("oci:{}:v1", layout.display()),
        &format!("{remote}:v1"),
    );
    oci.assert_image(&server.base, "library/app", "v1", &image)
        .await
        .unwrap();
    // A second tag on the same manifest, pushed by digest reference.
    skopeo.copy(
        &[],
        &format!("oci:{}:v1", layout.display()),
        &format!("{remote}:v1-alias"),
    );

    let raw = skopeo.inspect(true, &format!("{remote}:v1"));
    assert_eq!(
        sha256_digest(&raw),
        image.manifest.digest,
        "inspect --raw gives the pushed bytes"
    );
    let info: Value =
        serde_json::from_slice(&skopeo.inspect(false, &format!("{remote}:v1"))).unwrap();
    assert_eq!(info["Digest"], image.manifest.digest);
    let layers: Vec<&str> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, expected);
    assert_eq!(info["Architecture"], "amd64");

    let mut tags = skopeo.list_tags(&remote);
    tags.sort();
    assert_eq!(tags, ["v1", "v1-alias"]);

    let back = work.path().join("back");
    skopeo.copy(
        &[],
        &format!("{remote}:v1"),
        &format!("oci:{}:v1", back.display()),
    );
    let desc = oci_layout_descriptor(&back, "v1").unwrap();
    assert_eq!(
        desc["digest"], image.manifest.digest,
        "pulled manifest digest unchanged"
    );
    assert_layout_holds(&back, &image);

    // skopeo deletes the manifest by digest: every tag on it goes.
    run(skopeo
        .cmd()
        .args(["delete", "--tls-verify=false", "--creds", &skopeo.creds])
        .arg(format!("{remote}:v1")))
    .expect("skopeo delete");
    let pulled = oci
        .get_manifest(&server.base, "library/app", "v1")
        .await
        .unwrap();
    assert_eq!(
        pulled.status,
        StatusCode::NOT_FOUND,
        "tag gone after delete"
    );
    let pulled = oci
        .get_manifest(&server.base, "library/app", &image.manifest.digest)
        .await
        .unwrap();
    assert_eq!(
        pulled.status,
        StatusCode::NOT_FOUND,
        "manifest gone after delete"
    );
    assert!(!skopeo.list_tags(&remote).contains(&"v1".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_a_two_platform_index_both_ways() {
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = skopeo(work.path()) else {
        return;
    };
    let (_backend, server) = started().await;
    let oci = Oci::new();
    let mut rng = Rng::new();
    let index = support::random_index(&mut rng, 2, 256 * 1024);
    let layout = work.path().join("src");
    let blobs: Vec<&support::Blob> = index
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    support::write_oci_layout(&layout, "v1", &index.index, blobs).unwrap();
    let remote = format!("docker://{}/library/multi", server.host());

    skopeo.copy(
        &["--all"],
        &format!("oci:{}:v1", layout.display()),
        &format!("{remote}:v1"),
    );

    let pulled = oci
        .get_manifest(&server.base, "library/multi", "v1")
        .await
        .unwrap();
    assert_eq!(pulled.status, StatusCode::OK);
    assert_eq!(
        sha256_digest(&pulled.bytes),
        index.index.digest,
        "index bytes unchanged"
    );
    assert_eq!(pulled.header("Content-Type"), Some(support::OCI_INDEX));
    for image in &index.images {
        oci.assert_image(&server.base, "library/multi", &image.manifest.digest, image)
            .await
            .unwrap();
    }
    assert_eq!(
        sha256_digest(&skopeo.inspect(true, &format!("{remote}:v1"))),
        index.index.digest
    );
    // Without --raw skopeo resolves the index to one platform.
    let arm: Value = serde_json::from_slice(&{
        let mut cmd = skopeo.cmd();
        cmd.args(["--override-arch", "arm64", "--override-os", "linux"])
            .args(["inspect", "--tls-verify=false", "--creds", &skopeo.creds])
            .arg(format!("{remote}:v1"));
        run(&mut cmd).expect("skopeo inspect arm64")
    })
    .unwrap();
    assert_eq!(arm["Architecture"], "arm64");
    let layers: Vec<&str> = arm["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: Vec<&str> = index.images[1]
        .layers
        .iter()
        .map(|l| l.digest.as_str())
        .collect();
    assert_eq!(layers, expected, "inspect resolves the arm64 image");

    let back = work.path().join("back");
    skopeo.copy(
        &["--all"],
        &format!("{remote}:v1"),
        &format!("oci:{}:v1", back.display()),
    );
    let desc = oci_layout_descriptor(&back, "v1").unwrap();
    assert_eq!(
        desc["digest"], index.index.digest,
        "pulled index digest unchanged"
    );
    assert_eq!(
        oci_layout_blob(&back, &index.index.digest).unwrap(),
        index.index.bytes
    );
    for image in &index.images {
        assert_layout_holds(&back, image);
    }
}

/// buildah and podman keep their own image store; run them on a private one.
fn container_tool(bin: &Path, root: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .arg("--storage-driver")
        .arg("vfs");
    cmd
}

/// Can this machine run `bin` at all? The reason is printed when it cannot.
fn usable(bin: &Path, root: &Path) -> bool {
    match run(container_tool(bin, root).arg("images")) {
        Ok(_) => true,
        Err(e) => {
            // Installed but unable to run (no user namespaces, no storage driver
            // in a sandbox): that is the machine's limit, not the registry's,
            // so even CI skips rather than fails.
            eprintln!(
                "SKIPPED: {} cannot run on this machine: {e:#}",
                bin.display()
            );
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildah_pushes_and_podman_pulls() {
    let work = tempfile::tempdir().unwrap();
    let (Some(buildah), Some(podman)) = (tool("buildah"), tool("podman")) else {
        return;
    };
    let policy = write_policy(work.path());
    let (bstore, pstore) = (work.path().join("buildah"), work.path().join("podman"));
    if !usable(&buildah, &bstore) || !usable(&podman, &pstore) {
        return;
    }
    let (_backend, server) = started().await;
    let oci = Oci::new();
    let mut rng = Rng::new();
    let image = support::random_image(&mut rng, 2, 256 * 1024, "amd64");

    // buildah: pull an image pushed by raw HTTP, then push it under a new name.
    let source = format!("{}/library/app:v1", server.host());
    let built = format!("{}/library/built:v1", server.host());
    oci.push_image(&server.base, "library/app", "v1", &image)
        .await
        .unwrap();
    let creds = server.admin_creds();
    run(container_tool(&buildah, &bstore)
        .args([
            "pull",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--signature-policy",
        ])
        .arg(&policy)
        .arg(&source))
    .expect("buildah pull");
    run(container_tool(&buildah, &bstore).args(["tag", &source, &built])).expect("buildah tag");
    run(container_tool(&buildah, &bstore)
        .args([
            "push",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--signature-policy",
        ])
        .arg(&policy)
        .args([&built, &format!("docker://{built}")]))
    .expect("buildah push");
    let pushed = oci
        .get_manifest(&server.base, "library/built", "v1")
        .await
        .unwrap();
    assert_eq!(pushed.status, StatusCode::OK, "buildah's push is pullable");

    // podman: pull what buildah pushed, and the image pushed byte-for-byte by raw HTTP.
    for (reference, digest) in [
        (built.clone(), sha256_digest(&pushed.bytes)),
        (
            format!("{}/library/app:v1", server.host()),
            image.manifest.digest.clone(),
        ),
    ] {
        run(container_tool(&podman, &pstore)
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args([
                "pull",
                "--tls-verify=false",
                "--creds",
                &creds,
                "--signature-policy",
            ])
            .arg(&policy)
            .arg(&reference))
        .expect("podman pull");
        let out = run(container_tool(&podman, &pstore)
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &reference,
            ]))
        .expect("podman image inspect");
        // Images sharing a config share an ID in podman's store, so look for
        // this reference's own repo@digest rather than the image's first digest.
        let repo_digests: Vec<String> = serde_json::from_slice(&out).expect("RepoDigests json");
        let repo = reference
            .rsplit_once(':')
            .map_or(reference.as_str(), |(r, _)| r);
        let wanted = format!("{repo}@{digest}");
        assert!(
            repo_digests.contains(&wanted),
            "podman sees {reference} as {repo_digests:?}, expected {wanted}"
        );
    }
}
