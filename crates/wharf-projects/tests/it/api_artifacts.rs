//! `/projects/{p}/repositories/{r}/artifacts` over a real registry: types,
//! sizes, references, accessories, additions, tags, copies, deletes,
//! permissions and pull times, with content pushed through `/v2`.

use std::time::Duration;

use serde_json::{Value, json};
use wharf_projects::Role;

use crate::api_support::{ApiApp, expect_error, json_body, location};
use crate::artifact_support::*;

const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

fn url(app: &ApiApp, repo: &str, rest: &str) -> String {
    app.url(&format!("{}{rest}", artifacts_path(repo)))
}

async fn admin_get(app: &ApiApp, path: &str) -> reqwest::Response {
    app.as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_image_shows_its_type_size_config_tags_and_build_history() {
    let app = ApiApp::spawn_with_registry().await;
    let image = push_image(&app, "library/app", Some("v1"), "arm64").await;
    let digest = &image.manifest.digest;

    for reference in ["v1", digest.as_str()] {
        let a = get_artifact(&app, "library/app", reference, "").await;
        assert_eq!(a["type"], "IMAGE");
        assert_eq!(a["digest"], *digest);
        assert_eq!(a["media_type"], OCI_CONFIG);
        assert_eq!(a["manifest_media_type"], OCI_MANIFEST);
        assert_eq!(a["artifact_type"], OCI_CONFIG);
        assert_eq!(a["repository_name"], "library/app");
        assert_eq!(a["project_id"], app.library_id);
        assert_eq!(
            a["size"],
            (image.manifest.size + image.config.size + image.layer.size) as i64
        );
        assert_eq!(a["extra_attrs"]["architecture"], "arm64");
        assert_eq!(a["extra_attrs"]["os"], "linux");
        assert_eq!(a["extra_attrs"]["author"], "wharf tests");
        assert_eq!(a["extra_attrs"]["config"]["Env"][0], "PATH=/bin");
        assert_eq!(a["pull_time"], ZERO_TIME);
        assert!(a["push_time"].is_string());
        assert!(a["icon"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(a["references"], json!([]));
        assert_eq!(a["labels"], json!([]));
        assert_eq!(a["accessories"], json!([]));
        let tags = a["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0]["name"], "v1");
        assert_eq!(tags[0]["artifact_id"], a["id"]);
        assert_eq!(tags[0]["immutable"], false);
        assert_eq!(tags[0]["pull_time"], ZERO_TIME);
        assert_eq!(
            a["addition_links"]["build_history"],
            json!({
                "href": format!("/api/v2.0/projects/library/repositories/app/artifacts/{digest}/additions/build_history"),
                "absolute": false,
            })
        );
    }
    let without_tags = get_artifact(&app, "library/app", "v1", "?with_tag=false").await;
    assert!(without_tags.get("tags").is_none());

    let resp = app
        .as_admin(
            app.client
                .get(url(&app, "library/app", "/v1/additions/build_history")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let history = json_body(resp).await;
    assert_eq!(history, image_config("arm64")["history"]);
    let no_values = app
        .as_admin(
            app.client
                .get(url(&app, "library/app", "/v1/additions/values.yaml")),
        )
        .send()
        .await
        .unwrap();
    expect_error(no_values, 404, "NOT_FOUND").await;
    let sbom = app
        .as_admin(
            app.client
                .get(url(&app, "library/app", "/v1/additions/sbom")),
        )
        .send()
        .await
        .unwrap();
    expect_error(sbom, 404, "NOT_FOUND").await;
    let bogus = app
        .as_admin(
            app.client
                .get(url(&app, "library/app", "/v1/additions/bogus")),
        )
        .send()
        .await
        .unwrap();
    expect_error(bogus, 400, "BAD_REQUEST").await;

    // Bad references and unknown artifacts.
    for (reference, status, code) in [
        ("Bad%20Tag", 400, "BAD_REQUEST"),
        ("sha256:xyz", 400, "BAD_REQUEST"),
        ("v9", 404, "NOT_FOUND"),
    ] {
        let resp = admin_get(
            &app,
            &format!("{}/{reference}", artifacts_path("library/app")),
        )
        .await;
        expect_error(resp, status, code).await;
    }
    let unknown_digest = format!("sha256:{}", "0".repeat(64));
    let resp = admin_get(
        &app,
        &format!("{}/{unknown_digest}", artifacts_path("library/app")),
    )
    .await;
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = admin_get(&app, &artifacts_path("library/nothing")).await;
    expect_error(resp, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn an_index_lists_its_children_as_references_and_hides_them() {
    let app = ApiApp::spawn_with_registry().await;
    let repo = "library/multi/arch";
    let amd = push_image(&app, repo, None, "amd64").await;
    let arm = push_image(&app, repo, None, "arm64").await;
    let index = push_index(
        &app,
        repo,
        "latest",
        &[(&amd.manifest, "amd64"), (&arm.manifest, "arm64")],
    )
    .await;

    let resp = admin_get(&app, &artifacts_path(repo)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "1");
    let list = json_body(resp).await;
    let a = &list[0];
    assert_eq!(a["digest"], index.digest);
    assert_eq!(a["type"], "IMAGE");
    assert_eq!(a["media_type"], OCI_INDEX);
    assert_eq!(a["manifest_media_type"], OCI_INDEX);
    assert_eq!(a["addition_links"], json!({}));
    let child_size = |i: &Image| (i.manifest.size + i.config.size + i.layer.size) as i64;
    assert_eq!(
        a["size"],
        index.size as i64 + child_size(&amd) + child_size(&arm)
    );
    let refs = a["references"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0]["parent_id"], a["id"]);
    assert_eq!(refs[0]["child_digest"], amd.manifest.digest);
    assert_eq!(refs[0]["platform"]["architecture"], "amd64");
    assert_eq!(refs[1]["platform"]["architecture"], "arm64");
    let child = get_artifact(&app, repo, &amd.manifest.digest, "").await;
    assert_eq!(refs[0]["child_id"], child["id"]);
    assert_eq!(child["tags"], json!([]));

    // A child an index holds cannot go on its own; deleting the index takes
    // the children nothing else holds.
    let resp = app
        .as_admin(
            app.client
                .delete(url(&app, repo, &format!("/{}", amd.manifest.digest))),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "PRECONDITION").await;
    let resp = app
        .as_admin(app.client.delete(url(&app, repo, "/latest")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for digest in [&index.digest, &amd.manifest.digest, &arm.manifest.digest] {
        assert_eq!(
            pull(&app, repo, digest).await.status(),
            404,
            "{digest} is gone"
        );
    }
}

#[tokio::test]
async fn a_helm_chart_offers_values_readme_and_dependencies() {
    let app = ApiApp::spawn_with_registry().await;
    let chart = push_chart(&app, "library/charts/web", "web", "1.2.3").await;
    let a = get_artifact(&app, "library/charts/web", "1.2.3", "").await;
    assert_eq!(a["type"], "CHART");
    assert_eq!(a["media_type"], HELM_CONFIG);
    assert_eq!(a["digest"], chart.digest);
    assert_eq!(a["extra_attrs"]["name"], "web");
    assert_eq!(a["extra_attrs"]["version"], "1.2.3");
    let links = a["addition_links"].as_object().unwrap();
    let mut names: Vec<&str> = links.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["dependencies", "readme.md", "values.yaml"]);
    assert_eq!(
        links["values.yaml"]["href"],
        format!(
            "/api/v2.0/projects/library/repositories/charts%252Fweb/artifacts/{}/additions/values.yaml",
            chart.digest
        )
    );

    let fetch = |addition: &'static str| {
        app.as_admin(app.client.get(url(
            &app,
            "library/charts/web",
            &format!("/1.2.3/additions/{addition}"),
        )))
        .send()
    };
    let values = fetch("values.yaml").await.unwrap();
    assert_eq!(values.status(), 200);
    assert!(
        values.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(values.text().await.unwrap(), "replicas: 3\n");
    let readme = fetch("readme.md").await.unwrap();
    assert_eq!(readme.status(), 200);
    assert!(
        readme.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(readme.text().await.unwrap(), "# The chart\n");
    let deps = json_body(fetch("dependencies").await.unwrap()).await;
    assert_eq!(deps[0]["name"], "redis");
    expect_error(fetch("build_history").await.unwrap(), 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn accessories_are_listed_under_their_subject_with_their_types() {
    let app = ApiApp::spawn_with_registry().await;
    let repo = "library/signed";
    let image = push_image(&app, repo, Some("v1"), "amd64").await;
    let subject = &image.manifest;
    let cosign = push_artifact(
        &app,
        repo,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        Some(subject),
        None,
    )
    .await;
    let notation = push_artifact(
        &app,
        repo,
        "application/vnd.cncf.notary.signature",
        Some(subject),
        None,
    )
    .await;
    let sbom = push_artifact(
        &app,
        repo,
        "application/vnd.goharbor.harbor.sbom.v1",
        Some(subject),
        None,
    )
    .await;
    let legacy = push_legacy_cosign(&app, repo, subject).await;
    let other = push_artifact(&app, repo, "application/x-thing", None, Some("thing")).await;

    // Accessories are not artifacts of the list; the unrelated artifact is.
    let list = json_body(admin_get(&app, &format!("{}?sort=id", artifacts_path(repo))).await).await;
    let digests: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [subject.digest.as_str(), other.digest.as_str()]);
    let listed = &list[0];
    let accessories = listed["accessories"].as_array().unwrap();
    assert_eq!(accessories.len(), 4);
    let listed_types: Vec<(&str, &str)> = accessories
        .iter()
        .map(|a| (a["digest"].as_str().unwrap(), a["type"].as_str().unwrap()))
        .collect();
    for expected in [
        (cosign.digest.as_str(), "signature.cosign"),
        (notation.digest.as_str(), "signature.notation"),
        (sbom.digest.as_str(), "sbom.harbor"),
        (legacy.digest.as_str(), "signature.cosign"),
    ] {
        assert!(
            listed_types.contains(&expected),
            "{expected:?} in {listed_types:?}"
        );
    }
    assert_eq!(accessories[0]["subject_artifact_digest"], subject.digest);
    assert_eq!(accessories[0]["subject_artifact_id"], listed["id"]);
    assert_eq!(accessories[0]["subject_artifact_repo"], repo);
    let without = get_artifact(&app, repo, "v1", "?with_accessory=false").await;
    assert!(without.get("accessories").is_none());

    let resp = admin_get(
        &app,
        &format!("{}/v1/accessories?page_size=2", artifacts_path(repo)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "4");
    assert_eq!(json_body(resp).await.as_array().unwrap().len(), 2);
    let notation_only = json_body(
        admin_get(
            &app,
            &format!(
                "{}/v1/accessories?q=type%3Dsignature.notation",
                artifacts_path(repo)
            ),
        )
        .await,
    )
    .await;
    assert_eq!(notation_only.as_array().unwrap().len(), 1);
    assert_eq!(notation_only[0]["digest"], notation.digest);
    assert_eq!(notation_only[0]["artifact_id"], notation_only[0]["id"]);
    assert!(notation_only[0]["size"].as_i64().unwrap() > notation.size as i64);

    // Each accessory is an artifact of its own type.
    for (digest, kind) in [
        (&cosign.digest, "SIGNATURE.COSIGN"),
        (&notation.digest, "SIGNATURE.NOTATION"),
        (&sbom.digest, "SBOM"),
        (&legacy.digest, "SIGNATURE.COSIGN"),
        (&other.digest, "UNKNOWN"),
    ] {
        let a = get_artifact(&app, repo, digest, "").await;
        assert_eq!(a["type"], kind, "{digest}");
    }

    // An accessory cannot be copied alone; deleting the subject takes them.
    let resp = app
        .as_admin(app.client.post(app.url(&format!(
            "{}?from=library/signed@{}",
            artifacts_path("library/copies"),
            cosign.digest
        ))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "DENIED").await;
    let resp = app
        .as_admin(app.client.delete(url(&app, repo, "/v1")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for digest in [
        &cosign.digest,
        &notation.digest,
        &sbom.digest,
        &legacy.digest,
    ] {
        assert_eq!(
            pull(&app, repo, digest).await.status(),
            404,
            "{digest} went with its subject"
        );
    }
    assert_eq!(pull(&app, repo, &other.digest).await.status(), 200);
}

#[tokio::test]
async fn tags_are_created_listed_and_deleted() {
    let app = ApiApp::spawn_with_registry().await;
    let repo = "library/app";
    let v1 = push_image(&app, repo, Some("v1"), "amd64").await;
    push_image(&app, repo, Some("other"), "amd64").await;
    let tags_url = url(&app, repo, &format!("/{}/tags", v1.manifest.digest));

    let resp = app
        .as_admin(app.client.post(&tags_url))
        .json(&json!({"name": "stable"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let pulled = pull(&app, repo, "stable").await;
    assert_eq!(pulled.status(), 200);
    assert_eq!(
        pulled.headers()["docker-content-digest"],
        v1.manifest.digest.as_str()
    );
    let created = app.audit_entries().await.into_iter().any(|e| {
        (
            e.operation.as_str(),
            e.resource.as_str(),
            e.username.as_str(),
        ) == ("create", "library/app:stable", "admin")
    });
    assert!(created, "the tag creation is audited as a push by admin");

    // A name the repository already uses, on this artifact or another.
    for name in ["stable", "other"] {
        let resp = app
            .as_admin(app.client.post(&tags_url))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        expect_error(resp, 409, "CONFLICT").await;
    }
    let resp = app
        .as_admin(app.client.post(&tags_url))
        .json(&json!({"name": "no spaces"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = app
        .as_admin(app.client.post(&tags_url))
        .json(&json!({"nom": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;

    let resp = app
        .as_admin(app.client.get(format!("{tags_url}?sort=name")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "2");
    let tags = json_body(resp).await;
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stable", "v1"]);
    let fuzzy = json_body(
        app.as_admin(app.client.get(format!("{tags_url}?q=name%3D~tab")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fuzzy.as_array().unwrap().len(), 1);

    let resp = app
        .as_admin(app.client.delete(format!("{tags_url}/other")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = app
        .as_admin(app.client.delete(format!("{tags_url}/stable")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(pull(&app, repo, "stable").await.status(), 404);
    assert_eq!(
        pull(&app, repo, "v1").await.status(),
        200,
        "the artifact stays"
    );
    let deleted =
        app.audit_entries().await.into_iter().any(|e| {
            (e.operation.as_str(), e.resource.as_str()) == ("delete", "library/app:stable")
        });
    assert!(deleted, "the tag deletion is audited");
}

#[tokio::test]
async fn immutable_status_and_labels_are_shown_when_asked() {
    let app = ApiApp::spawn_with_registry().await;
    push_image(&app, "library/app", Some("v1"), "amd64").await;
    let rule = json!({
        "action": "immutable", "template": "immutable_template", "priority": 0, "disabled": false,
        "params": {},
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    });
    let resp = app
        .as_admin(
            app.client
                .post(app.url("/projects/library/immutabletagrules")),
        )
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let a = get_artifact(&app, "library/app", "v1", "?with_immutable_status=true").await;
    assert_eq!(a["tags"][0]["immutable"], true);
    let a = get_artifact(&app, "library/app", "v1", "").await;
    assert_eq!(a["tags"][0]["immutable"], false, "only computed when asked");
    let tags = json_body(
        admin_get(
            &app,
            &format!(
                "{}/v1/tags?with_immutable_status=true",
                artifacts_path("library/app")
            ),
        )
        .await,
    )
    .await;
    assert_eq!(tags[0]["immutable"], true);
    // The registry refuses to delete it, and says so as Harbor does.
    let resp = app
        .as_admin(app.client.delete(url(&app, "library/app", "/v1/tags/v1")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 412, "PRECONDITION").await;

    let label = wharf_projects::labels::create_label(
        app.pool(),
        &wharf_projects::labels::LabelText {
            name: "prod".into(),
            description: "in production".into(),
            color: "#00ff00".into(),
        },
        wharf_projects::labels::LabelScope::Global,
    )
    .await
    .unwrap();
    let id = a["id"].as_i64().unwrap();
    wharf_projects::labels::attach_label(app.pool(), id, label.id)
        .await
        .unwrap();
    let labelled = get_artifact(&app, "library/app", "v1", "?with_label=true").await;
    assert_eq!(labelled["labels"][0]["name"], "prod");
    assert_eq!(labelled["labels"][0]["scope"], "g");
    assert_eq!(
        get_artifact(&app, "library/app", "v1", "").await["labels"],
        json!([])
    );
    let filtered = json_body(
        admin_get(
            &app,
            &format!(
                "{}?q=labels%3D({})",
                artifacts_path("library/app"),
                label.id
            ),
        )
        .await,
    )
    .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn artifacts_are_listed_with_filters_sorting_and_paging() {
    let app = ApiApp::spawn_with_registry().await;
    let repo = "library/app";
    let first = push_image(&app, repo, Some("v1"), "amd64").await;
    let second = push_image(&app, repo, Some("v2"), "amd64").await;
    let untagged = push_image(&app, repo, None, "amd64").await;
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let resp = admin_get(app, &format!("{}{query}", artifacts_path(repo))).await;
            assert_eq!(resp.status(), 200, "{query}");
            let total: i64 = resp.headers()["x-total-count"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body = json_body(resp).await;
            let digests: Vec<String> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["digest"].as_str().unwrap().to_owned())
                .collect();
            (total, digests)
        }
    };
    let (total, newest_first) = list("").await;
    assert_eq!(total, 3);
    assert_eq!(
        newest_first,
        [
            untagged.manifest.digest.as_str(),
            second.manifest.digest.as_str(),
            first.manifest.digest.as_str()
        ]
    );
    assert_eq!(list("?sort=push_time").await.1[0], first.manifest.digest);
    assert_eq!(list("?q=tags%3D*").await.0, 2);
    assert_eq!(
        list("?q=tags%3Dnil").await.1,
        [untagged.manifest.digest.as_str()]
    );
    assert_eq!(
        list("?q=tags%3Dv2").await.1,
        [second.manifest.digest.as_str()]
    );
    assert_eq!(list("?q=tags%3D~v").await.0, 2);
    let (total, page) = list("?page=2&page_size=2").await;
    assert_eq!((total, page), (3, vec![first.manifest.digest.clone()]));
    let resp = admin_get(
        &app,
        &format!("{}?page=1&page_size=2", artifacts_path(repo)),
    )
    .await;
    assert!(
        resp.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );
    let resp = admin_get(&app, &format!("{}?q=colour%3Dred", artifacts_path(repo))).await;
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = admin_get(
        &app,
        &format!(
            "{}?q=push_time%3D[2000-01-01 00:00:00~]",
            artifacts_path(repo)
        ),
    )
    .await;
    assert_eq!(resp.headers()["x-total-count"], "3");
    let resp = admin_get(
        &app,
        &format!(
            "{}?q=push_time%3D[~2000-01-01 00:00:00]",
            artifacts_path(repo)
        ),
    )
    .await;
    assert_eq!(resp.headers()["x-total-count"], "0");
}

#[tokio::test]
async fn copies_carry_tags_children_and_accessories_between_projects() {
    let app = ApiApp::spawn_with_registry().await;
    let dest = app.create_project("dest", false).await;
    let src = app.create_project("src", false).await;
    let image = push_image(&app, "src/app", Some("v1"), "amd64").await;
    let sig = push_artifact(
        &app,
        "src/app",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        Some(&image.manifest),
        None,
    )
    .await;
    let amd = push_image(&app, "src/multi", None, "amd64").await;
    let index = push_index(&app, "src/multi", "all", &[(&amd.manifest, "amd64")]).await;

    let copy = |to: &str, from: String| {
        app.as_admin(
            app.client
                .post(app.url(&format!("{}?from={from}", artifacts_path(to)))),
        )
        .send()
    };
    let resp = copy("dest/app", "src/app:v1".into()).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        location(&resp),
        "/api/v2.0/projects/dest/repositories/app/artifacts/v1"
    );
    let copied = get_artifact(&app, "dest/app", "v1", "").await;
    assert_eq!(copied["digest"], image.manifest.digest);
    assert_eq!(copied["project_id"], dest);
    assert_eq!(copied["accessories"][0]["digest"], sig.digest);
    let blob = app
        .client
        .get(format!(
            "{}/v2/dest/app/blobs/{}",
            app.base, image.layer.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200, "the layers are served from the copy");
    assert_eq!(pull(&app, "dest/app", &sig.digest).await.status(), 200);

    let resp = copy("dest/sub/multi", format!("src/multi@{}", index.digest))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let copied = get_artifact(&app, "dest/sub/multi", "all", "").await;
    assert_eq!(copied["references"][0]["child_digest"], amd.manifest.digest);
    assert!(copied["references"][0]["child_id"].is_i64());
    assert_eq!(
        pull(&app, "dest/sub/multi", &amd.manifest.digest)
            .await
            .status(),
        200
    );
    let audit = app.audit_entries().await;
    assert!(
        audit
            .iter()
            .any(|e| e.operation == "create" && e.resource == "dest/sub/multi:all")
    );

    // Missing and malformed sources.
    expect_error(
        copy("dest/app", "src/app:v9".into()).await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        copy("dest/app", "src/none:v1".into()).await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        copy("dest/app", "nowhere/app:v1".into()).await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        copy("dest/app", "src/app".into()).await.unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        copy("dest/app", "src/app@sha256:nope".into())
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    let resp = app
        .as_admin(app.client.post(app.url(&artifacts_path("dest/app"))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;

    // Permissions: create on the destination, read on the source.
    let (dev_id, dev_pw) = app.create_user("dev").await;
    app.add_member(dest, dev_id, Role::Developer).await;
    let as_dev = |from: &str| {
        app.as_basic(
            app.client
                .post(app.url(&format!("{}?from={from}", artifacts_path("dest/mine")))),
            "dev",
            &dev_pw,
        )
        .send()
    };
    expect_error(as_dev("src/app:v1").await.unwrap(), 404, "NOT_FOUND").await;
    app.add_member(src, dev_id, Role::LimitedGuest).await;
    assert_eq!(as_dev("src/app:v1").await.unwrap().status(), 201);
    let (guest_id, guest_pw) = app.create_user("guest").await;
    app.add_member(dest, guest_id, Role::Guest).await;
    app.add_member(src, guest_id, Role::Guest).await;
    let resp = app
        .as_basic(
            app.client.post(app.url(&format!(
                "{}?from=src/app:v1",
                artifacts_path("dest/theirs")
            ))),
            "guest",
            &guest_pw,
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn artifact_permissions_follow_the_role_matrix() {
    let app = ApiApp::spawn_with_registry().await;
    let project = app.create_project("team", false).await;
    let image = push_image(&app, "team/app", Some("v1"), "amd64").await;
    push_image(&app, "library/pub", Some("v1"), "amd64").await;
    let mut pw = std::collections::HashMap::new();
    for (name, role) in [
        ("limited", Role::LimitedGuest),
        ("guest", Role::Guest),
        ("dev", Role::Developer),
        ("keeper", Role::Maintainer),
    ] {
        let (id, secret) = app.create_user(name).await;
        app.add_member(project, id, role).await;
        pw.insert(name, secret);
    }
    let (_, outsider) = app.create_user("outsider").await;
    pw.insert("outsider", outsider);
    let call = |method: reqwest::Method, path: String, who: Option<&str>| {
        let mut rb = app.client.request(method.clone(), app.url(&path));
        if method == reqwest::Method::POST {
            rb = rb.json(&json!({"name": format!("t{}", uuid::Uuid::new_v4().simple())}));
        }
        if let Some(who) = who {
            rb = app.as_basic(rb, who, &pw[who]);
        }
        rb.send()
    };
    let base = artifacts_path("team/app");
    let reads = [
        base.clone(),
        format!("{base}/v1"),
        format!("{base}/v1/tags"),
        format!("{base}/v1/accessories"),
        format!("{base}/v1/additions/build_history"),
    ];
    for who in ["limited", "guest", "dev", "keeper"] {
        for path in &reads {
            let resp = call(reqwest::Method::GET, path.clone(), Some(who))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{who} GET {path}");
        }
    }
    for path in &reads {
        let resp = call(reqwest::Method::GET, path.clone(), Some("outsider"))
            .await
            .unwrap();
        expect_error(resp, 404, "NOT_FOUND").await;
        let resp = call(reqwest::Method::GET, path.clone(), None)
            .await
            .unwrap();
        expect_error(resp, 404, "NOT_FOUND").await;
    }
    let tags = format!("{base}/v1/tags");
    for (who, status) in [
        ("limited", 403),
        ("guest", 403),
        ("dev", 201),
        ("keeper", 201),
    ] {
        let resp = call(reqwest::Method::POST, tags.clone(), Some(who))
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{who} creates a tag");
    }
    for who in ["guest", "dev"] {
        let resp = call(
            reqwest::Method::DELETE,
            format!("{base}/v1/tags/v1"),
            Some(who),
        )
        .await
        .unwrap();
        expect_error(resp, 403, "FORBIDDEN").await;
        let resp = call(reqwest::Method::DELETE, format!("{base}/v1"), Some(who))
            .await
            .unwrap();
        expect_error(resp, 403, "FORBIDDEN").await;
    }
    let resp = call(
        reqwest::Method::DELETE,
        format!("{base}/{}", image.manifest.digest),
        Some("keeper"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);

    // A public project: anyone reads artifacts; changes need sign-in.
    let public = artifacts_path("library/pub");
    for path in [
        public.clone(),
        format!("{public}/v1"),
        format!("{public}/v1/tags"),
        format!("{public}/v1/additions/build_history"),
    ] {
        let resp = call(reqwest::Method::GET, path.clone(), None)
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "anonymous GET {path}");
    }
    let resp = call(reqwest::Method::POST, format!("{public}/v1/tags"), None)
        .await
        .unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;
    let resp = call(
        reqwest::Method::DELETE,
        format!("{public}/v1"),
        Some("outsider"),
    )
    .await
    .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn pull_times_and_counts_arrive_with_the_pull_batch() {
    let app = ApiApp::spawn_with_registry().await;
    let image = push_image(&app, "library/app", Some("v1"), "amd64").await;
    assert_eq!(pull(&app, "library/app", "v1").await.status(), 200);
    assert_eq!(
        pull(&app, "library/app", &image.manifest.digest)
            .await
            .status(),
        200
    );

    let mut artifact = Value::Null;
    for _ in 0..100 {
        artifact = get_artifact(&app, "library/app", "v1", "").await;
        if artifact["pull_time"] != ZERO_TIME && artifact["tags"][0]["pull_time"] != ZERO_TIME {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        artifact["pull_time"], ZERO_TIME,
        "the artifact's pull time is recorded"
    );
    assert_ne!(
        artifact["tags"][0]["pull_time"], ZERO_TIME,
        "the tag's pull time is recorded"
    );
    let mut repository = Value::Null;
    for _ in 0..100 {
        repository = json_body(admin_get(&app, "/projects/library/repositories/app").await).await;
        if repository["pull_count"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(repository["pull_count"], 2);
    let resp = admin_get(
        &app,
        &format!("{}?sort=-pull_time", artifacts_path("library/app")),
    )
    .await;
    assert_eq!(json_body(resp).await[0]["digest"], image.manifest.digest);
    let pulled_after = json_body(
        admin_get(
            &app,
            &format!(
                "{}?q=pull_time%3D[2000-01-01 00:00:00~]",
                artifacts_path("library/app")
            ),
        )
        .await,
    )
    .await;
    assert_eq!(pulled_after.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_copy_over_quota_is_refused_whole() {
    let app = ApiApp::spawn_with_registry().await;
    let small = app.create_project("small", false).await;
    push_image(&app, "library/app", Some("v1"), "amd64").await;
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/projects/{small}"))))
        .json(&json!({"storage_limit": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_admin(app.client.post(app.url(&format!(
            "{}?from=library/app:v1",
            artifacts_path("small/app")
        ))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "DENIED").await;
    assert_eq!(pull(&app, "small/app", "v1").await.status(), 404);
    let resp = admin_get(&app, "/projects/small/repositories/app").await;
    expect_error(resp, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn copies_and_tags_wait_for_garbage_collection_holding_a_blob() {
    let app = ApiApp::spawn_with_registry().await;
    let image = push_image(&app, "library/app", Some("v1"), "amd64").await;
    // What garbage collection holds while it decides about a blob (the
    // registry's blob lock class, see wharf-registry's db::blob_locks).
    let mut collector = app.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(0x0b10_b000_i32)
        .bind(&image.layer.digest)
        .execute(&mut *collector)
        .await
        .unwrap();
    let copy = app
        .as_admin(app.client.post(app.url(&format!(
            "{}?from=library/app:v1",
            artifacts_path("library/copy")
        ))))
        .send();
    let tag = app
        .as_admin(app.client.post(url(&app, "library/app", "/v1/tags")))
        .json(&json!({"name": "v1-again"}))
        .send();
    let both =
        tokio::spawn(async move { (copy.await.unwrap().status(), tag.await.unwrap().status()) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !both.is_finished(),
        "the writers wait for the collector's lock"
    );
    collector.commit().await.unwrap();
    let (copied, tagged) = both.await.unwrap();
    assert_eq!((copied.as_u16(), tagged.as_u16()), (201, 201));
}
