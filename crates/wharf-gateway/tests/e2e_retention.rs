//! Tag retention end to end against a real `wharf serve`: images pushed with
//! skopeo (or, without it, the raw OCI client), a policy made through the
//! REST API, a dry run that deletes nothing and lists what would go, and a
//! real run on the server's own job workers after which exactly the
//! expected tags still pull. Wharf only: the reference registry has no
//! retention.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Oci, Rng, Server, random_image, run, tool};

async fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{}/api/v2.0{path}", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1));
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    rb.send().await.unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn last_id(location: &str) -> i64 {
    location.rsplit('/').next().unwrap().parse().unwrap()
}

/// Trigger a run and wait for it to finish; returns (execution id, status).
async fn run_policy(server: &Server, id: i64, dry_run: bool) -> (i64, String) {
    let resp = api(
        server,
        reqwest::Method::POST,
        &format!("/retentions/{id}/executions"),
        Some(json!({ "dry_run": dry_run })),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let eid = last_id(&location(&resp));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs: Value = api(
            server,
            reqwest::Method::GET,
            &format!("/retentions/{id}/executions"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        let run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == eid)
            .cloned()
            .unwrap();
        let status = run["status"].as_str().unwrap().to_owned();
        if matches!(status.as_str(), "Success" | "Error" | "Stopped") {
            return (eid, status);
        }
        assert!(Instant::now() < deadline, "run {eid} did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_policy_keeps_the_newest_and_the_releases() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: retention is Wharf's; the reference registry has none");
        return;
    }
    let server = backend.start().await;
    server.create_project("team", false).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::new();
    let oci = Oci::new();
    // Pushed oldest first: the push order is the push-time order.
    let tags = ["release-1", "v1", "v2", "v3"];
    let skopeo = tool("skopeo");
    let policy_file = work.path().join("policy.json");
    std::fs::write(
        &policy_file,
        br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    for tag in tags {
        let image = random_image(&mut rng, 1, 8 * 1024, "amd64");
        match &skopeo {
            Some(skopeo) => {
                let layout = work.path().join(tag);
                support::write_oci_layout(&layout, tag, &image.manifest, image.blobs()).unwrap();
                copy(skopeo, &policy_file, &layout, tag, &server).unwrap();
            }
            None => oci
                .push_image(&server.base, "team/app", tag, &image)
                .await
                .unwrap(),
        }
        // Push times a clear step apart, whatever the clock's resolution.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let policy = json!({
        "algorithm": "or",
        "rules": [
            {"action": "retain", "template": "latestPushedK", "params": {"latestPushedK": 1},
             "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
             "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}},
            {"action": "retain", "template": "always", "params": {},
             "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "release-*"}],
             "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}},
        ],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
        "scope": {"level": "project", "ref": project_id(&server, "team").await},
    });
    let resp = api(&server, reqwest::Method::POST, "/retentions", Some(policy)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = last_id(&location(&resp));

    let (dry, status) = run_policy(&server, id, true).await;
    assert_eq!(status, "Success");
    for tag in tags {
        let got = oci
            .get_manifest(&server.base, "team/app", tag)
            .await
            .unwrap();
        assert_eq!(got.status, StatusCode::OK, "the dry run kept {tag}");
    }
    let tasks: Value = api(
        &server,
        reqwest::Method::GET,
        &format!("/retentions/{id}/executions/{dry}/tasks"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(tasks[0]["repository"], "team/app");
    assert_eq!(
        (tasks[0]["total"].as_i64(), tasks[0]["retained"].as_i64()),
        (Some(4), Some(2))
    );
    let log = api(
        &server,
        reqwest::Method::GET,
        &format!("/retentions/{id}/executions/{dry}/tasks/{}", tasks[0]["id"]),
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    let would_go: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("] DEL "))
        .filter_map(|l| l.split("tags=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(would_go, ["v2", "v1"], "{log}");

    let (_, status) = run_policy(&server, id, false).await;
    assert_eq!(status, "Success");
    for (tag, expected) in [
        ("release-1", StatusCode::OK),
        ("v1", StatusCode::NOT_FOUND),
        ("v2", StatusCode::NOT_FOUND),
        ("v3", StatusCode::OK),
    ] {
        let got = oci
            .get_manifest(&server.base, "team/app", tag)
            .await
            .unwrap();
        assert_eq!(got.status, expected, "{tag}");
    }
    let mut left = oci.tags(&server.base, "team/app").await.unwrap();
    left.sort();
    assert_eq!(left, ["release-1", "v3"]);
}

fn copy(
    skopeo: &Path,
    policy: &Path,
    layout: &Path,
    tag: &str,
    server: &Server,
) -> anyhow::Result<Vec<u8>> {
    run(Command::new(skopeo)
        .arg("--policy")
        .arg(policy)
        .args(["copy", "--retry-times", "0", "--dest-tls-verify=false"])
        .args(["--dest-creds", &server.admin_creds()])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/team/app:{tag}", server.host())))
}

async fn project_id(server: &Server, name: &str) -> i64 {
    let project: Value = api(
        server,
        reqwest::Method::GET,
        &format!("/projects/{name}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    project["project_id"].as_i64().unwrap()
}
