//! Tag immutability end to end against a real `wharf serve`: rules made
//! through the REST API, then `/v2` pushes that would move an immutable tag
//! and deletes of the tag or its artifact refused with `DENIED` (by the raw
//! OCI client and by skopeo), and the same writes allowed once the rule is
//! disabled. Wharf only: the reference registry has no rules.

mod support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Image, Oci, Rng, Server, random_image, run, tool};

fn rule(repo: &str, tag: &str, disabled: bool) -> Value {
    json!({
        "action": "immutable",
        "template": "immutable_template",
        "disabled": disabled,
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tag}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": repo}]},
    })
}

async fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}/api/v2.0{path}", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `DENIED` message of a `/v2` refusal (asserting it is one).
async fn denied(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

async fn put_manifest(
    oci: &Oci,
    server: &Server,
    repo: &str,
    tag: &str,
    image: &Image,
) -> reqwest::Response {
    oci.send(
        oci.http
            .put(format!("{}/v2/{repo}/manifests/{tag}", server.base))
            .header(CONTENT_TYPE, &image.manifest.media_type)
            .body(image.manifest.bytes.clone()),
    )
    .await
    .unwrap()
}

async fn delete(oci: &Oci, server: &Server, repo: &str, reference: &str) -> reqwest::Response {
    oci.send(
        oci.http
            .delete(format!("{}/v2/{repo}/manifests/{reference}", server.base)),
    )
    .await
    .unwrap()
}

async fn wharf() -> Option<(Backend, Server)> {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: immutability rules are Wharf's, the reference registry has none");
        return None;
    }
    let server = backend.start().await;
    Some((backend, server))
}

#[tokio::test]
async fn immutable_tags_cannot_be_moved_or_deleted_through_v2() {
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let resp = api(
        &server,
        reqwest::Method::POST,
        "/projects/team/immutabletagrules",
        rule("app", "v*", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let rule_id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();

    let oci = Oci::new();
    let mut rng = Rng::new();
    let v1 = random_image(&mut rng, 1, 8 * 1024, "amd64");
    let other = random_image(&mut rng, 1, 8 * 1024, "amd64");
    oci.push_image(&server.base, "team/app", "v1", &v1)
        .await
        .unwrap();
    // The same digest again is not a move.
    oci.push_image(&server.base, "team/app", "v1", &v1)
        .await
        .unwrap();
    for blob in other.blobs() {
        oci.push_blob(&server.base, "team/app", &blob.bytes)
            .await
            .unwrap();
    }

    let message = denied(put_manifest(&oci, &server, "team/app", "v1", &other).await).await;
    assert_eq!(
        message,
        format!(
            "the tag team/app:v1 is immutable and points at {}: it cannot be moved to {}; push \
             under a new tag (rule {rule_id} (repositories matching app, tags matching v*) of project team)",
            v1.manifest.digest, other.manifest.digest
        )
    );
    let pulled = oci
        .get_manifest(&server.base, "team/app", "v1")
        .await
        .unwrap();
    assert_eq!(
        pulled.header("Docker-Content-Digest"),
        Some(v1.manifest.digest.as_str())
    );

    // Neither the tag nor the artifact it marks can be deleted.
    let message = denied(delete(&oci, &server, "team/app", "v1").await).await;
    assert!(
        message.starts_with("the tag team/app:v1 is immutable and cannot be deleted"),
        "{message}"
    );
    let message = denied(delete(&oci, &server, "team/app", &v1.manifest.digest).await).await;
    assert!(
        message.contains("carries the immutable tag v1"),
        "{message}"
    );
    assert_eq!(
        oci.get_manifest(&server.base, "team/app", &v1.manifest.digest)
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );

    // Tags outside the rule behave as usual.
    oci.push_image(&server.base, "team/app", "latest", &v1)
        .await
        .unwrap();
    assert_eq!(
        put_manifest(&oci, &server, "team/app", "latest", &other)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        delete(&oci, &server, "team/app", "latest").await.status(),
        StatusCode::ACCEPTED
    );
    oci.push_image(&server.base, "team/web", "v1", &v1)
        .await
        .unwrap();
    oci.push_image(&server.base, "team/web", "v1", &other)
        .await
        .unwrap();

    // Disabled, the rule protects nothing.
    let resp = api(
        &server,
        reqwest::Method::PUT,
        &format!("/projects/team/immutabletagrules/{rule_id}"),
        rule("app", "v*", true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        put_manifest(&oci, &server, "team/app", "v1", &other)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        delete(&oci, &server, "team/app", "v1").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        delete(&oci, &server, "team/app", &v1.manifest.digest)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn skopeo_cannot_overwrite_an_immutable_tag() {
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = tool("skopeo") else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let resp = api(
        &server,
        reqwest::Method::POST,
        "/projects/team/immutabletagrules",
        rule("**", "release-*", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let copy = |layout: &Path, to: &str| {
        run(Command::new(&skopeo)
            .arg("--policy")
            .arg(&policy)
            .args(["copy", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", &format!("{}:{}", E2E_ADMIN.0, E2E_ADMIN.1)])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/{to}", server.host())))
    };
    let mut rng = Rng::new();
    let layouts: Vec<std::path::PathBuf> = (0..2)
        .map(|i| {
            let image = random_image(&mut rng, 1, 16 * 1024, "amd64");
            let path = work.path().join(format!("image{i}"));
            support::write_oci_layout(&path, "v1", &image.manifest, image.blobs()).unwrap();
            path
        })
        .collect();
    copy(&layouts[0], "team/deep/app:release-1").unwrap();
    let refused = copy(&layouts[1], "team/deep/app:release-1")
        .expect_err("an immutable tag cannot be overwritten");
    let text = refused.to_string();
    assert!(
        text.contains("the tag team/deep/app:release-1 is immutable"),
        "skopeo said: {text}"
    );
    copy(&layouts[1], "team/deep/app:latest").unwrap();
    copy(&layouts[0], "team/deep/app:latest").unwrap();
}
