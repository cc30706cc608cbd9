//! Webhooks through the real HTTP API and a real `/v2` registry, delivered
//! by real `wharf_jobs` workers to a real HTTP receiver: policy CRUD in
//! Harbor's shapes, validation, permissions per role; pushes, pulls and
//! deletes delivered in each payload format with the auth header; a failing
//! receiver retried and the attempts logged; nothing sent for a change that
//! rolls back; quota warnings and refusals; retention runs.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf_projects::Role;
use wharf_projects::webhooks::{WebhookConfig, WebhookJob};

use crate::api_robots::{member, project, user};
use crate::api_support::{ApiApp, expect_error, id_from_location, json_body, location, text};
use crate::artifact_support::{
    LAYER, OCI_CONFIG, OCI_MANIFEST, image_config, pull, push_blob, push_image, push_manifest,
    put_manifest,
};
use crate::webhook_receiver::{Receiver, Reply};

/// The host the test's webhook job names in `resource_url`.
const REGISTRY_HOST: &str = "registry.test:5000";

const WAIT: Duration = Duration::from_secs(30);

/// Workers for the app's database on a pool of their own, with the webhook
/// job (3 attempts, 2 s timeout) and everything else `register_jobs` has.
async fn workers(app: &ApiApp) -> wharf_jobs::Jobs {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with((*app.pool().connect_options()).clone())
        .await
        .expect("worker pool");
    let mut jobs = wharf_jobs::Jobs::start(pool).await.expect("jobs start");
    wharf_projects::jobs::register_jobs(&mut jobs);
    let config = WebhookConfig {
        timeout_secs: 2,
        max_attempts: 3,
    };
    jobs.register(
        wharf_projects::webhooks::KIND,
        Arc::new(WebhookJob::new(config, Some(REGISTRY_HOST.into())).expect("http client")),
    );
    jobs.set_timings(wharf_jobs::WorkerTimings {
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    });
    // Detached: it runs until the test's runtime ends.
    drop(jobs.run_worker(2, std::future::pending()));
    jobs
}

fn http_target(address: &str, format: Option<&str>, auth: &str) -> Value {
    let mut t =
        json!({"type": "http", "address": address, "auth_header": auth, "skip_cert_verify": false});
    if let Some(f) = format {
        t["payload_format"] = f.into();
    }
    t
}

fn policy(name: &str, targets: Vec<Value>, events: &[&str]) -> Value {
    json!({
        "name": name,
        "description": "sends to the test receiver",
        "targets": targets,
        "event_types": events,
        "enabled": true,
    })
}

/// POST a policy as admin; returns its id.
async fn create(app: &ApiApp, project: &str, body: &Value) -> i64 {
    let resp = app
        .as_admin(
            app.client
                .post(app.url(&format!("/projects/{project}/webhook/policies"))),
        )
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let loc = location(&resp);
    assert_eq!(status, StatusCode::CREATED, "{}", text(resp).await);
    assert!(
        loc.starts_with(&format!("/api/v2.0/projects/{project}/webhook/policies/")),
        "{loc}"
    );
    id_from_location(&loc)
}

async fn get(app: &ApiApp, path: &str) -> (Value, Option<String>) {
    let resp = app
        .as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let total = resp
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = json_body(resp).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    (body, total)
}

/// The policy's jobs once none is pending or running.
async fn settled_jobs(app: &ApiApp, project: &str, policy: i64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (jobs, _) = get(
            app,
            &format!("/projects/{project}/webhook/jobs?policy_id={policy}&page_size=100"),
        )
        .await;
        let jobs = jobs.as_array().unwrap().clone();
        if !jobs.is_empty()
            && jobs
                .iter()
                .all(|j| matches!(j["status"].as_str(), Some("Success" | "Error" | "Stopped")))
        {
            return jobs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs did not settle: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliveries(app: &ApiApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn policies_are_managed_in_harbors_shapes() {
    let app = ApiApp::spawn().await;
    let project_id = app.create_project("team", false).await;
    let body = policy(
        "ci",
        vec![
            http_target("https://ci.example/hook", None, "Bearer s3cret"),
            json!({"type": "slack", "address": "https://hooks.slack.example/T/B/x"}),
        ],
        &["PUSH_ARTIFACT", "DELETE_ARTIFACT"],
    );
    let id = create(&app, "team", &body).await;

    let (got, _) = get(&app, &format!("/projects/team/webhook/policies/{id}")).await;
    assert_eq!(got["id"], id);
    assert_eq!(got["name"], "ci");
    assert_eq!(got["description"], "sends to the test receiver");
    assert_eq!(got["project_id"], project_id);
    assert_eq!(got["creator"], "admin");
    assert_eq!(got["enabled"], true);
    assert_eq!(
        got["event_types"],
        json!(["PUSH_ARTIFACT", "DELETE_ARTIFACT"])
    );
    assert_eq!(
        got["targets"],
        json!([
            {"type": "http", "address": "https://ci.example/hook", "auth_header": "Bearer s3cret",
             "skip_cert_verify": false, "payload_format": "Default"},
            {"type": "slack", "address": "https://hooks.slack.example/T/B/x", "skip_cert_verify": false},
        ])
    );
    for key in ["creation_time", "update_time"] {
        chrono::DateTime::parse_from_rfc3339(got[key].as_str().unwrap()).expect(key);
    }
    // By id and by name alike.
    let (by_name, _) = get(
        &app,
        &format!("/projects/{project_id}/webhook/policies/{id}"),
    )
    .await;
    assert_eq!(by_name["name"], "ci");

    // A second policy; the list is newest first, filterable.
    let other = create(
        &app,
        "team",
        &policy(
            "audit-sink",
            vec![http_target("http://sink.example/", Some("CloudEvents"), "")],
            &["PULL_ARTIFACT"],
        ),
    )
    .await;
    let (list, total) = get(&app, "/projects/team/webhook/policies").await;
    assert_eq!(total.as_deref(), Some("2"));
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [other, id]);
    let (fuzzy, total) = get(&app, "/projects/team/webhook/policies?q=name%3D~sink").await;
    assert_eq!(total.as_deref(), Some("1"));
    assert_eq!(fuzzy[0]["id"], other);
    let (sorted, _) = get(&app, "/projects/team/webhook/policies?sort=name").await;
    assert_eq!(sorted[0]["name"], "audit-sink");

    // Same name in the project: 409; in another project: fine.
    let dup = app
        .as_admin(app.client.post(app.url("/projects/team/webhook/policies")))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(dup, 409, "CONFLICT").await;
    app.create_project("other", false).await;
    create(&app, "other", &body).await;

    // Update: everything replaced; `enabled` left out keeps its value.
    let mut changed = policy(
        "ci-renamed",
        vec![http_target(
            "https://ci.example/v2",
            Some("CloudEvents"),
            "",
        )],
        &["QUOTA_EXCEED"],
    );
    changed.as_object_mut().unwrap().remove("enabled");
    let resp = app
        .as_admin(
            app.client
                .put(app.url(&format!("/projects/team/webhook/policies/{id}"))),
        )
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", text(resp).await);
    let (got, _) = get(&app, &format!("/projects/team/webhook/policies/{id}")).await;
    assert_eq!(got["name"], "ci-renamed");
    assert_eq!(got["event_types"], json!(["QUOTA_EXCEED"]));
    assert_eq!(got["targets"][0]["payload_format"], "CloudEvents");
    assert_eq!(got["enabled"], true);
    assert_eq!(got["creator"], "admin");
    changed["enabled"] = false.into();
    let resp = app
        .as_admin(
            app.client
                .put(app.url(&format!("/projects/team/webhook/policies/{id}"))),
        )
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (disabled, total) = get(&app, "/projects/team/webhook/policies?q=enabled%3Dfalse").await;
    assert_eq!(total.as_deref(), Some("1"));
    assert_eq!(disabled[0]["id"], id);

    // Every change is in the audit log.
    let audit = app.last_audit("webhook_policy").await.expect("audited");
    assert_eq!(audit.operation, "update");
    assert_eq!(audit.resource, "team/ci-renamed");
    assert_eq!(audit.username, "admin");

    // The supported types.
    let (events, _) = get(&app, "/projects/team/webhook/events").await;
    assert_eq!(events["notify_type"], json!(["http", "slack"]));
    assert!(
        events["event_type"]
            .as_array()
            .unwrap()
            .contains(&json!("TAG_RETENTION"))
    );
    let (triggers, _) = get(&app, "/projects/team/webhook/lasttrigger").await;
    assert_eq!(triggers.as_array().unwrap().len(), 2, "{triggers}");
    assert!(triggers[0].get("last_trigger_time").is_none());

    // Delete; then it is gone, and a policy of another project is not
    // reachable through this one.
    let resp = app
        .as_admin(
            app.client
                .delete(app.url(&format!("/projects/team/webhook/policies/{id}"))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .as_admin(
            app.client
                .get(app.url(&format!("/projects/team/webhook/policies/{id}"))),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = app
        .as_admin(
            app.client
                .get(app.url(&format!("/projects/other/webhook/policies/{other}"))),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    assert_eq!(
        app.last_audit("webhook_policy").await.unwrap().operation,
        "delete"
    );
}

#[tokio::test]
async fn bad_policies_are_refused_with_harbors_envelope() {
    let app = ApiApp::spawn().await;
    app.create_project("team", false).await;
    let good_target = http_target("http://h.example/", None, "");
    let cases = [
        (
            policy("a", vec![], &["PUSH_ARTIFACT"]),
            "empty notification target",
        ),
        (
            policy("a", vec![good_target.clone()], &[]),
            "empty event type",
        ),
        (
            policy("a", vec![good_target.clone()], &["PUSH_IMAGE"]),
            "unsupported event type PUSH_IMAGE",
        ),
        (
            policy(
                "a",
                vec![json!({"type": "email", "address": "http://h.example/"})],
                &["PUSH_ARTIFACT"],
            ),
            "unsupported target type",
        ),
        (
            policy(
                "a",
                vec![
                    json!({"type": "slack", "address": "https://h.example/", "payload_format": "CloudEvents"}),
                ],
                &["PUSH_ARTIFACT"],
            ),
            "not allowed for slack",
        ),
        (
            policy(
                "a",
                vec![http_target("http://h.example/", Some("XML"), "")],
                &["PUSH_ARTIFACT"],
            ),
            "unsupported payload format",
        ),
        (
            policy(
                "a",
                vec![http_target("gopher://h.example/", None, "")],
                &["PUSH_ARTIFACT"],
            ),
            "http://",
        ),
        (
            policy("", vec![good_target.clone()], &["PUSH_ARTIFACT"]),
            "needs a name",
        ),
    ];
    for (body, message) in cases {
        let resp = app
            .as_admin(app.client.post(app.url("/projects/team/webhook/policies")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let got = expect_error(resp, 400, "BAD_REQUEST").await;
        assert!(got.contains(message), "{body}: {got}");
    }
    let resp = app
        .as_admin(app.client.post(app.url("/projects/team/webhook/policies")))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    // An update naming another id in its body.
    let id = create(
        &app,
        "team",
        &policy("ok", vec![good_target.clone()], &["PUSH_ARTIFACT"]),
    )
    .await;
    let mut body = policy("ok", vec![good_target], &["PUSH_ARTIFACT"]);
    body["id"] = (id + 1).into();
    let resp = app
        .as_admin(
            app.client
                .put(app.url(&format!("/projects/team/webhook/policies/{id}"))),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = app
        .as_admin(app.client.get(app.url("/projects/team/webhook/jobs")))
        .send()
        .await
        .unwrap();
    assert!(
        expect_error(resp, 400, "BAD_REQUEST")
            .await
            .contains("policy_id")
    );
    assert_eq!(deliveries(&app).await, 0);
}

#[tokio::test]
async fn permissions_follow_harbors_roles() {
    let app = ApiApp::spawn().await;
    let team = project(&app, "team", false).await;
    let id = create(
        &app,
        "team",
        &policy(
            "ci",
            vec![http_target("http://h.example/", None, "")],
            &["PUSH_ARTIFACT"],
        ),
    )
    .await;
    let body = policy(
        "by-someone",
        vec![http_target("http://h.example/", None, "")],
        &["PUSH_ARTIFACT"],
    );
    // (role, may read and list, may create/update/delete)
    let roles = [
        (Some(Role::ProjectAdmin), true, true),
        (Some(Role::Maintainer), true, false),
        (Some(Role::Developer), false, false),
        (Some(Role::Guest), false, false),
        (Some(Role::LimitedGuest), false, false),
    ];
    for (n, (role, reads, writes)) in roles.into_iter().enumerate() {
        let name = format!("user{n}");
        let (u, password) = user(&app, &name).await;
        member(&app, &team, &u, role.unwrap()).await;
        let read = |path: String| {
            app.as_basic(app.client.get(app.url(&path)), &name, &password)
                .send()
        };
        let list = read("/projects/team/webhook/policies".into())
            .await
            .unwrap();
        let one = read(format!("/projects/team/webhook/policies/{id}"))
            .await
            .unwrap();
        let jobs = read(format!("/projects/team/webhook/jobs?policy_id={id}"))
            .await
            .unwrap();
        let events = read("/projects/team/webhook/events".into()).await.unwrap();
        for resp in [list, one, jobs, events] {
            let expected = if reads { 200 } else { 403 };
            assert_eq!(resp.status().as_u16(), expected, "{role:?} reading");
        }
        let mut mine = body.clone();
        mine["name"] = format!("by-{name}").into();
        let created = app
            .as_basic(
                app.client.post(app.url("/projects/team/webhook/policies")),
                &name,
                &password,
            )
            .json(&mine)
            .send()
            .await
            .unwrap();
        let updated = app
            .as_basic(
                app.client
                    .put(app.url(&format!("/projects/team/webhook/policies/{id}"))),
                &name,
                &password,
            )
            .json(&policy(
                "ci",
                vec![http_target("http://h.example/", None, "")],
                &["PUSH_ARTIFACT"],
            ))
            .send()
            .await
            .unwrap();
        if writes {
            assert_eq!(created.status(), StatusCode::CREATED, "{role:?}");
            assert_eq!(updated.status(), StatusCode::OK, "{role:?}");
            let (got, _) = get(
                &app,
                &format!(
                    "/projects/team/webhook/policies/{}",
                    id_from_location(&location(&created))
                ),
            )
            .await;
            assert_eq!(got["creator"], name.as_str());
        } else {
            expect_error(created, 403, "FORBIDDEN").await;
            expect_error(updated, 403, "FORBIDDEN").await;
            let deleted = app
                .as_basic(
                    app.client
                        .delete(app.url(&format!("/projects/team/webhook/policies/{id}"))),
                    &name,
                    &password,
                )
                .send()
                .await
                .unwrap();
            expect_error(deleted, 403, "FORBIDDEN").await;
        }
    }
    // Not a member of a private project: it does not exist for them.
    let (_, password) = user(&app, "stranger").await;
    let resp = app
        .as_basic(
            app.client.get(app.url("/projects/team/webhook/policies")),
            "stranger",
            &password,
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    // Anonymous callers are asked to sign in, even on a public project.
    project(&app, "open", true).await;
    let resp = app
        .client
        .get(app.url("/projects/open/webhook/policies"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;
    // A robot granted the list permission lists, and may not create.
    let (robot, secret) = app
        .robot(
            "hooks",
            &[(
                "project",
                "team",
                &[
                    ("notification-policy", "list"),
                    ("notification-policy", "read"),
                ],
            )],
        )
        .await;
    let resp = app
        .as_basic(
            app.client.get(app.url("/projects/team/webhook/policies")),
            &robot,
            &secret,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .as_basic(
            app.client.post(app.url("/projects/team/webhook/policies")),
            &robot,
            &secret,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn a_push_is_delivered_in_every_format_with_its_auth_header() {
    let app = ApiApp::spawn_with_registry().await;
    let project_id = app.create_project("team", true).await;
    let receiver = Receiver::start();
    let _jobs = workers(&app).await;
    let policy_id = create(
        &app,
        "team",
        &policy(
            "all-formats",
            vec![
                http_target(&receiver.url("/harbor"), None, "Bearer s3cret"),
                http_target(&receiver.url("/cloudevents"), Some("CloudEvents"), "Token x"),
                json!({"type": "slack", "address": receiver.url("/slack"), "auth_header": "never-sent"}),
            ],
            &["PUSH_ARTIFACT"],
        ),
    )
    .await;
    let image = push_image(&app, "team/app", Some("v1"), "amd64").await;
    let digest = image.manifest.digest.clone();

    let harbor = receiver.wait_for("/harbor", 1, WAIT).await;
    assert_eq!(harbor[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(harbor[0].header("content-type"), Some("application/json"));
    let payload = harbor[0].json();
    assert_eq!(payload["type"], "PUSH_ARTIFACT");
    assert_eq!(payload["operator"], "anonymous");
    let occur_at = payload["occur_at"].as_i64().unwrap();
    assert!((chrono::Utc::now().timestamp() - occur_at).abs() < 60);
    assert_eq!(
        payload["event_data"]["resources"],
        json!([{"digest": digest, "tag": "v1",
                "resource_url": format!("{REGISTRY_HOST}/team/app:v1")}])
    );
    let repository = &payload["event_data"]["repository"];
    assert_eq!(repository["name"], "app");
    assert_eq!(repository["namespace"], "team");
    assert_eq!(repository["repo_full_name"], "team/app");
    assert_eq!(repository["repo_type"], "public");
    assert!(repository["date_created"].as_i64().unwrap() <= occur_at);

    let ce = receiver.wait_for("/cloudevents", 1, WAIT).await;
    assert_eq!(
        ce[0].header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(ce[0].header("authorization"), Some("Token x"));
    let event = ce[0].json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "harbor.artifact.pushed");
    assert_eq!(
        event["source"],
        format!("/projects/{project_id}/webhook/policies/{policy_id}")
    );
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["id"].as_str(), ce[0].header("x-wharf-delivery"));
    assert_eq!(event["data"], payload["event_data"]);
    chrono::DateTime::parse_from_rfc3339(event["time"].as_str().unwrap()).expect("time");

    let slack = receiver.wait_for("/slack", 1, WAIT).await;
    assert_eq!(
        slack[0].header("authorization"),
        None,
        "no credential to Slack"
    );
    let message = slack[0].json();
    assert_eq!(
        message["text"],
        format!("PUSH_ARTIFACT {REGISTRY_HOST}/team/app:v1 by anonymous")
    );
    assert!(message["blocks"].as_array().unwrap().len() >= 5);

    // Exactly one of each, and the log says so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3, "{:?}", receiver.received());
    let jobs = settled_jobs(&app, "team", policy_id).await;
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(job["status"], "Success", "{job}");
        assert_eq!(job["event_type"], "PUSH_ARTIFACT");
        assert_eq!(job["run_count"], 1);
        assert_eq!(job["response_code"], 200);
        assert_eq!(job["attempts"][0]["status"], "Success");
        assert_eq!(job["attempts"][0]["response_code"], 200);
    }
    let harbor_job = jobs
        .iter()
        .find(|j| j["address"] == receiver.url("/harbor"))
        .unwrap();
    assert_eq!(harbor_job["notify_type"], "http");
    let detail: Value = serde_json::from_str(harbor_job["job_detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["event_data"]["resources"][0]["digest"], digest);

    // The same deliveries as Harbor's executions, tasks and task logs.
    let (executions, total) = get(
        &app,
        &format!("/projects/team/webhook/policies/{policy_id}/executions"),
    )
    .await;
    assert_eq!(total.as_deref(), Some("3"));
    let slack_exec = executions
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vendor_type"] == "SLACK")
        .expect("a SLACK execution");
    assert_eq!(slack_exec["vendor_id"], policy_id);
    assert_eq!(slack_exec["trigger"], "EVENT");
    assert_eq!(slack_exec["status"], "Success");
    assert_eq!(slack_exec["metrics"]["success_task_count"], 1);
    assert_eq!(slack_exec["extra_attrs"]["event_type"], "PUSH_ARTIFACT");
    let eid = slack_exec["id"].as_i64().unwrap();
    let (tasks, _) = get(
        &app,
        &format!("/projects/team/webhook/policies/{policy_id}/executions/{eid}/tasks"),
    )
    .await;
    assert_eq!(tasks[0]["execution_id"], eid);
    assert_eq!(tasks[0]["run_count"], 1);
    let tid = tasks[0]["id"].as_i64().unwrap();
    let log = app
        .as_admin(app.client.get(app.url(&format!(
            "/projects/team/webhook/policies/{policy_id}/executions/{eid}/tasks/{tid}/log"
        ))))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), StatusCode::OK);
    let log = log.text().await.unwrap();
    assert!(log.contains("attempt 1: delivered: HTTP 200"), "{log}");
    let (triggers, _) = get(&app, "/projects/team/webhook/lasttrigger").await;
    assert!(triggers[0]["last_trigger_time"].is_string(), "{triggers}");
}

#[tokio::test]
async fn a_refusing_receiver_is_retried_and_every_attempt_logged() {
    let app = ApiApp::spawn_with_registry().await;
    app.create_project("team", false).await;
    let receiver = Receiver::start();
    receiver.script([Reply::Status(500), Reply::Status(503)]);
    let _jobs = workers(&app).await;
    let policy_id = create(
        &app,
        "team",
        &policy(
            "flaky",
            vec![http_target(&receiver.url("/hook"), None, "")],
            &["PUSH_ARTIFACT"],
        ),
    )
    .await;
    push_image(&app, "team/app", Some("v1"), "amd64").await;
    // Attempts after e^1 and e^2 seconds of backoff.
    let got = receiver.wait_for("/hook", 3, Duration::from_secs(40)).await;
    let ids: Vec<_> = got.iter().map(|r| r.header("x-wharf-delivery")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one delivery: {ids:?}");
    let jobs = settled_jobs(&app, "team", policy_id).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["status"], "Success", "{job}");
    assert_eq!(job["run_count"], 3);
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status"], "Error");
    assert_eq!(attempts[0]["response_code"], 500);
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("receiver says 500"),
        "{job}"
    );
    assert_eq!(attempts[1]["response_code"], 503);
    assert_eq!(attempts[2]["status"], "Success");
    assert_eq!(attempts[2]["response_code"], 200);

    // A receiver that never accepts: given up after the configured 3.
    receiver.script([Reply::Status(400); 3]);
    let (jobs_before, _) = get(
        &app,
        &format!("/projects/team/webhook/jobs?policy_id={policy_id}"),
    )
    .await;
    push_image(&app, "team/app", Some("v2"), "amd64").await;
    receiver.wait_for("/hook", 6, Duration::from_secs(40)).await;
    let deadline = std::time::Instant::now() + WAIT;
    let failed = loop {
        let (jobs, _) = get(
            &app,
            &format!("/projects/team/webhook/jobs?policy_id={policy_id}&status=Error"),
        )
        .await;
        if let Some(job) = jobs.as_array().unwrap().first() {
            break job.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no failed job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(jobs_before.as_array().unwrap().len(), 1);
    assert_eq!(failed["run_count"], 3);
    assert!(
        failed["status_message"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{failed}"
    );
    // Nothing more is tried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 6);
}

#[tokio::test]
async fn a_rolled_back_change_sends_nothing_and_a_committed_one_is_sent() {
    use wharf_registry::seams::{EventSink, Principal, RegistryEvent};
    let app = ApiApp::spawn().await;
    app.create_project("team", false).await;
    let receiver = Receiver::start();
    let jobs = workers(&app).await;
    create(
        &app,
        "team",
        &policy(
            "ci",
            vec![http_target(&receiver.url("/hook"), None, "")],
            &["PUSH_ARTIFACT"],
        ),
    )
    .await;
    let (sink, _writer) = wharf_projects::audit::RegistryAudit::spawn(app.pool().clone());
    let pushed = |tag: &str| RegistryEvent::ManifestPushed {
        repository: wharf_oci::RepositoryName::parse("team/app").unwrap(),
        digest: wharf_oci::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        tag: Some(tag.to_owned()),
        media_type: OCI_MANIFEST.into(),
        size: 10,
        actor: Principal {
            name: Some("ci-bot".into()),
            client_addr: None,
        },
    };
    let queued = || async {
        jobs.queue_depth()
            .await
            .unwrap()
            .into_iter()
            .find(|(kind, _)| kind == wharf_projects::webhooks::KIND)
            .map_or(0, |(_, n)| n)
    };

    // The registry's transaction rolls back: no delivery, no job, no request.
    let mut tx = app.pool().begin().await.unwrap();
    sink.record_change(&mut tx, &pushed("lost")).await.unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "written in the change's transaction");
    tx.rollback().await.unwrap();
    assert_eq!(deliveries(&app).await, 0);
    assert_eq!(queued().await, 0);

    // It commits: delivered, once.
    let mut tx = app.pool().begin().await.unwrap();
    sink.record_change(&mut tx, &pushed("kept")).await.unwrap();
    tx.commit().await.unwrap();
    let got = receiver.wait_for("/hook", 1, WAIT).await;
    let payload = got[0].json();
    assert_eq!(payload["event_data"]["resources"][0]["tag"], "kept");
    assert_eq!(payload["operator"], "ci-bot");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn pulls_deletes_and_disabled_policies() {
    let app = ApiApp::spawn_with_registry().await;
    app.create_project("team", false).await;
    let receiver = Receiver::start();
    let _jobs = workers(&app).await;
    create(
        &app,
        "team",
        &policy(
            "pulls",
            vec![http_target(&receiver.url("/pulls"), None, "")],
            &["PULL_ARTIFACT", "DELETE_ARTIFACT"],
        ),
    )
    .await;
    let mut off = policy(
        "off",
        vec![http_target(&receiver.url("/off"), None, "")],
        &["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT"],
    );
    off["enabled"] = false.into();
    create(&app, "team", &off).await;

    let image = push_image(&app, "team/app", Some("v1"), "amd64").await;
    let resp = pull(&app, "team/app", "v1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let got = receiver.wait_for("/pulls", 1, WAIT).await;
    let payload = got[0].json();
    assert_eq!(payload["type"], "PULL_ARTIFACT");
    assert_eq!(payload["event_data"]["resources"][0]["tag"], "v1");
    assert_eq!(
        payload["event_data"]["resources"][0]["digest"],
        image.manifest.digest
    );
    assert_eq!(payload["event_data"]["repository"]["repo_type"], "private");

    let resp = app
        .client
        .delete(format!(
            "{}/v2/team/app/manifests/{}",
            app.base, image.manifest.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "{}", text(resp).await);
    let got = receiver.wait_for("/pulls", 2, WAIT).await;
    let deleted = got[1].json();
    assert_eq!(deleted["type"], "DELETE_ARTIFACT");
    let digest = &image.manifest.digest;
    assert_eq!(
        deleted["event_data"]["resources"],
        json!([{"digest": digest, "tag": digest,
                "resource_url": format!("{REGISTRY_HOST}/team/app@{digest}")}])
    );
    // The push went to no one (the only policy for pushes is disabled).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(receiver.received().iter().all(|r| r.path == "/pulls"));
    assert_eq!(receiver.received().len(), 2);
}

/// The quota of project `name` as the API shows it: (quota id, used).
async fn quota(app: &ApiApp, project_id: i64) -> (i64, i64) {
    let (list, _) = get(
        app,
        &format!("/quotas?reference=project&reference_id={project_id}"),
    )
    .await;
    (
        list[0]["id"].as_i64().unwrap(),
        list[0]["used"]["storage"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn quota_warnings_and_refusals_are_sent() {
    let app = ApiApp::spawn_with_registry().await;
    let project_id = app.create_project("team", false).await;
    let receiver = Receiver::start();
    let _jobs = workers(&app).await;
    create(
        &app,
        "team",
        &policy(
            "quota",
            vec![http_target(&receiver.url("/quota"), None, "")],
            &["QUOTA_WARNING", "QUOTA_EXCEED", "PUSH_ARTIFACT"],
        ),
    )
    .await;
    // An image of about 100 KiB, then a limit that puts usage at 84%.
    let config = push_blob(
        &app,
        "team/app",
        &serde_json::to_vec(&image_config("amd64")).unwrap(),
        OCI_CONFIG,
    )
    .await;
    let big = push_blob(&app, "team/app", &vec![7u8; 100 * 1024], LAYER).await;
    let manifest = |layers: Vec<Value>| {
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": config.descriptor(), "layers": layers})
    };
    push_manifest(
        &app,
        "team/app",
        Some("v1"),
        &manifest(vec![big.descriptor()]),
    )
    .await;
    let (quota_id, used) = quota(&app, project_id).await;
    let limit = used * 100 / 84;
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/quotas/{quota_id}"))))
        .json(&json!({"hard": {"storage": limit}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", text(resp).await);

    // A push of about 2.5 KiB more crosses 85%: one warning.
    let small = push_blob(&app, "team/app", &vec![8u8; 2048], LAYER).await;
    let crossing = push_manifest(
        &app,
        "team/app",
        Some("v2"),
        &manifest(vec![big.descriptor(), small.descriptor()]),
    )
    .await;
    // A push that would not fit is refused: one QUOTA_EXCEED, no push event.
    let huge = push_blob(&app, "team/app", &vec![9u8; 50 * 1024], LAYER).await;
    let refused_manifest = manifest(vec![huge.descriptor()]);
    let resp = put_manifest(&app, "team/app", "v3", &refused_manifest).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{}", text(resp).await);

    let got = receiver.wait_for("/quota", 4, WAIT).await;
    let by_type = |t: &str| -> Vec<Value> {
        got.iter()
            .map(|r| r.json())
            .filter(|p| p["type"] == t)
            .collect()
    };
    let warnings = by_type("QUOTA_WARNING");
    assert_eq!(warnings.len(), 1, "{got:?}");
    let warning = &warnings[0];
    assert_eq!(warning["operator"], "");
    assert_eq!(
        warning["event_data"]["resources"][0]["digest"],
        crossing.digest
    );
    assert_eq!(warning["event_data"]["resources"][0]["tag"], "v2");
    assert_eq!(
        warning["event_data"]["repository"]["repo_full_name"],
        "team/app"
    );
    let details = warning["event_data"]["custom_attributes"]["Details"]
        .as_str()
        .unwrap();
    assert!(details.contains("reached 8"), "{details}");
    let exceeded = by_type("QUOTA_EXCEED");
    assert_eq!(exceeded.len(), 1, "{got:?}");
    let details = exceeded[0]["event_data"]["custom_attributes"]["Details"]
        .as_str()
        .unwrap();
    assert!(
        details.starts_with("quota exceeded in project team"),
        "{details}"
    );
    assert_eq!(exceeded[0]["event_data"]["resources"][0]["tag"], "v3");
    let pushes = by_type("PUSH_ARTIFACT");
    let tags: Vec<&str> = pushes
        .iter()
        .map(|p| p["event_data"]["resources"][0]["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert!(!tags.contains(&"v3"), "{tags:?}");
    // A further push below the limit but above 85% does not warn again.
    let tiny = push_blob(&app, "team/app", &[1u8; 16], LAYER).await;
    push_manifest(
        &app,
        "team/app",
        Some("v4"),
        &manifest(vec![big.descriptor(), tiny.descriptor()]),
    )
    .await;
    receiver.wait_for("/quota", 5, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warnings = receiver
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "QUOTA_WARNING")
        .count();
    assert_eq!(warnings, 1);
}

#[tokio::test]
async fn a_retention_run_sends_its_result_and_a_dry_run_nothing() {
    use wharf_projects::admission::ProjectAdmission;
    use wharf_projects::retention::RetentionJob;
    use wharf_registry::{Registry, RegistryConfig};
    use wharf_store::{BlobStore, StorageConfig};
    let app = ApiApp::spawn_with_registry().await;
    let project_id = app.create_project("keep", false).await;
    let receiver = Receiver::start();
    let mut jobs = workers(&app).await;
    // The retention job deletes through a registry of its own on the
    // app's blob directory, with the same seams as the server's.
    let store = BlobStore::from_config(&StorageConfig::Filesystem {
        root: app.storage.as_ref().unwrap().path().to_path_buf(),
    })
    .await
    .unwrap();
    let (audit, _writer) = wharf_projects::audit::RegistryAudit::spawn(app.pool().clone());
    let registry = Registry::new(app.pool().clone(), store, RegistryConfig::default())
        .with_admission(Arc::new(ProjectAdmission::new(app.pool().clone())))
        .with_events(Arc::new(audit));
    jobs.register(
        wharf_projects::retention::KIND,
        Arc::new(RetentionJob::new(registry)),
    );
    drop(jobs.run_worker(1, std::future::pending()));
    create(
        &app,
        "keep",
        &policy(
            "retention",
            vec![http_target(&receiver.url("/retention"), None, "")],
            &["TAG_RETENTION"],
        ),
    )
    .await;
    push_image(&app, "keep/app", Some("old"), "amd64").await;
    push_image(&app, "keep/app", Some("new"), "amd64").await;
    let selector = json!([{"kind": "doublestar", "decoration": "matches", "pattern": "**"}]);
    let retention = json!({
        "algorithm": "or",
        "rules": [{
            "priority": 0, "disabled": false, "action": "retain", "template": "latestPushedK",
            "params": {"latestPushedK": 1},
            "tag_selectors": selector,
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
        }],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
        "scope": {"level": "project", "ref": project_id},
    });
    let resp = app
        .as_admin(app.client.post(app.url("/retentions")))
        .json(&retention)
        .send()
        .await
        .unwrap();
    let loc = location(&resp);
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", text(resp).await);
    let retention_id = id_from_location(&loc);
    let run = |dry_run: bool| {
        app.as_admin(
            app.client
                .post(app.url(&format!("/retentions/{retention_id}/executions"))),
        )
        .json(&json!({ "dry_run": dry_run }))
        .send()
    };
    let resp = run(true).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = run(false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let real = id_from_location(&location(&resp));

    let got = receiver
        .wait_for("/retention", 1, Duration::from_secs(60))
        .await;
    let payload = got[0].json();
    assert_eq!(payload["type"], "TAG_RETENTION");
    assert_eq!(payload["operator"], "MANUAL");
    let r = &payload["event_data"]["retention"];
    assert_eq!(r["total"], 2, "{payload}");
    assert_eq!(r["retained"], 1);
    assert_eq!(r["project_name"], "keep");
    assert_eq!(r["retention_policy_id"], retention_id);
    assert_eq!(r["execution_id"], real, "the real run, not the dry one");
    assert_eq!(r["result"], "SUCCESS");
    assert_eq!(r["harbor_hostname"], "registry.test");
    assert_eq!(r["retention_rule"][0]["template"], "latestPushedK");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1);
}
