//! `/retentions` through the real HTTP API, with real content pushed through
//! a real `/v2` registry and the retention job running on real `wharf_jobs`
//! workers: a dry run and a real run on a project whose push and pull times
//! are set to known values give exactly the expected survivors; schedules,
//! stopping, permissions and validation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf_projects::Role;
use wharf_projects::retention::RetentionJob;

use crate::api_robots::user;
use crate::api_support::{ApiApp, expect_error, id_from_location, json_body, location, text};
use crate::artifact_support::{Pushed, pull, push_image, push_index};

/// A registry on the test's pool and the app's blob directory, with the
/// project admission and audit sink, for the job (the server has its own).
async fn job_registry(app: &ApiApp) -> wharf_registry::Registry {
    use wharf_projects::admission::ProjectAdmission;
    use wharf_registry::{Registry, RegistryConfig};
    use wharf_store::{BlobStore, StorageConfig};
    let root = app
        .storage
        .as_ref()
        .expect("spawned with a registry")
        .path()
        .to_path_buf();
    let store = BlobStore::from_config(&StorageConfig::Filesystem { root })
        .await
        .expect("blob store");
    let (audit, _writer) = wharf_projects::audit::RegistryAudit::spawn(app.pool().clone());
    Registry::new(app.pool().clone(), store, RegistryConfig::default())
        .with_admission(Arc::new(ProjectAdmission::new(app.pool().clone())))
        .with_events(Arc::new(audit))
}

/// The job system on the test database with the retention job registered
/// (and a worker running when `worker`).
async fn jobs(app: &ApiApp, worker: bool) -> wharf_jobs::Jobs {
    let mut jobs = wharf_jobs::Jobs::start(app.pool().clone())
        .await
        .expect("jobs start");
    wharf_projects::jobs::register_jobs(&mut jobs);
    jobs.register(
        wharf_projects::retention::KIND,
        Arc::new(RetentionJob::new(job_registry(app).await)),
    );
    if worker {
        // Detached: it runs until the test's runtime ends.
        drop(jobs.run_worker(2, std::future::pending()));
    }
    jobs
}

fn repo_selector(decoration: &str, pattern: &str) -> Value {
    json!({"repository": [{"kind": "doublestar", "decoration": decoration, "pattern": pattern}]})
}

fn rule(template: &str, n: Option<i64>, tags: &str, untagged: Option<bool>, repos: Value) -> Value {
    let params = match n {
        Some(n) => json!({ template: n }),
        None => json!({}),
    };
    let extras = untagged
        .map(|u| json!({ "untagged": u }).to_string())
        .unwrap_or_default();
    json!({
        "priority": 0, "disabled": false, "action": "retain", "template": template,
        "params": params,
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tags, "extras": extras}],
        "scope_selectors": repos,
    })
}

fn policy(project_id: i64, rules: Value, cron: &str) -> Value {
    json!({
        "algorithm": "or",
        "rules": rules,
        "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
        "scope": {"level": "project", "ref": project_id},
    })
}

/// A one-rule policy that keeps everything.
fn keep_all(project_id: i64, cron: &str) -> Value {
    policy(
        project_id,
        json!([rule(
            "always",
            None,
            "**",
            None,
            repo_selector("repoMatches", "**")
        )]),
        cron,
    )
}

async fn send(
    app: &ApiApp,
    who: Option<(&str, &str)>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut rb = app.client.request(method, app.url(path));
    if let Some((name, secret)) = who {
        rb = rb.basic_auth(name, Some(secret));
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    rb.send().await.unwrap()
}

fn admin(app: &ApiApp) -> Option<(&str, &str)> {
    Some(("admin", app.admin_password.as_str()))
}

/// POST a policy as admin; returns its id.
async fn create(app: &ApiApp, body: Value) -> i64 {
    let resp = send(
        app,
        admin(app),
        reqwest::Method::POST,
        "/retentions",
        Some(body),
    )
    .await;
    let status = resp.status();
    let loc = location(&resp);
    assert_eq!(status, StatusCode::CREATED, "{}", text(resp).await);
    assert!(loc.starts_with("/api/v2.0/retentions/"), "{loc}");
    id_from_location(&loc)
}

/// Trigger a run as admin; returns the execution id.
async fn trigger(app: &ApiApp, id: i64, dry_run: bool) -> i64 {
    let resp = send(
        app,
        admin(app),
        reqwest::Method::POST,
        &format!("/retentions/{id}/executions"),
        Some(json!({ "dry_run": dry_run })),
    )
    .await;
    let status = resp.status();
    let loc = location(&resp);
    assert_eq!(status, StatusCode::CREATED, "{}", text(resp).await);
    assert!(
        loc.starts_with(&format!("/api/v2.0/retentions/{id}/executions/")),
        "{loc}"
    );
    id_from_location(&loc)
}

async fn get_json(app: &ApiApp, path: &str) -> (Value, Option<String>) {
    let resp = send(app, admin(app), reqwest::Method::GET, path, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    let total = resp
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().to_owned());
    (json_body(resp).await, total)
}

/// The run `eid` of policy `id` once it has finished.
async fn finished(app: &ApiApp, id: i64, eid: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (runs, _) = get_json(app, &format!("/retentions/{id}/executions?page_size=100")).await;
        let run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == eid)
            .cloned()
            .unwrap_or_else(|| panic!("run {eid} not listed: {runs}"));
        if matches!(
            run["status"].as_str(),
            Some("Success" | "Error" | "Stopped")
        ) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {eid} did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tasks of a run, by repository.
async fn tasks(app: &ApiApp, id: i64, eid: i64) -> Vec<Value> {
    let (tasks, total) = get_json(app, &format!("/retentions/{id}/executions/{eid}/tasks")).await;
    let tasks = tasks.as_array().unwrap().clone();
    assert_eq!(total.as_deref(), Some(tasks.len().to_string().as_str()));
    tasks
}

async fn task_log(app: &ApiApp, id: i64, eid: i64, tid: i64) -> String {
    let resp = send(
        app,
        admin(app),
        reqwest::Method::GET,
        &format!("/retentions/{id}/executions/{eid}/tasks/{tid}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.unwrap()
}

/// The digests a task log marks with `verdict` (`DEL`, `RETAIN`, `ERR`).
fn marked(log: &str, verdict: &str) -> Vec<String> {
    let mut digests: Vec<String> = log
        .lines()
        .filter_map(|line| line.split_once(" [INFO] ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.strip_prefix(&format!("{verdict} ")))
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .collect();
    digests.sort();
    digests
}

/// Set an artifact's push time (its row and its tags) to `pushed_hours`
/// ago and its pull time to `pulled_hours` ago (or never).
async fn age(app: &ApiApp, repo: &str, digest: &str, pushed_hours: i32, pulled_hours: Option<i32>) {
    let done = sqlx::query(
        "UPDATE manifests m
            SET created_at = now() - make_interval(hours => $3),
                pull_time = CASE WHEN $4::int IS NULL THEN NULL
                                 ELSE now() - make_interval(hours => $4) END
           FROM repositories r
          WHERE r.id = m.repository_id AND r.name = $1 AND m.digest = $2",
    )
    .bind(repo)
    .bind(digest)
    .bind(pushed_hours)
    .bind(pulled_hours)
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1, "{repo}@{digest}");
    sqlx::query(
        "UPDATE tags t SET updated_at = now() - make_interval(hours => $3), pull_time = NULL
           FROM manifests m JOIN repositories r ON r.id = m.repository_id
          WHERE t.manifest_id = m.id AND r.name = $1 AND m.digest = $2",
    )
    .bind(repo)
    .bind(digest)
    .bind(pushed_hours)
    .execute(app.pool())
    .await
    .unwrap();
}

/// The digests a repository holds now (every manifest row), sorted.
async fn holds(app: &ApiApp, repo: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
          WHERE r.name = $1 ORDER BY m.digest",
    )
    .bind(repo)
    .fetch_all(app.pool())
    .await
    .unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const DAY: i32 = 24;

/// The prepared project: what is in it and what the policy should keep.
struct Prepared {
    project_id: i64,
    keep_ax: Vec<String>,
    gone_ax: Vec<String>,
    keep_b: Vec<String>,
    gone_b: Vec<String>,
    /// The untagged children of the index that goes.
    children: Vec<String>,
    scratch: Vec<String>,
}

async fn image(app: &ApiApp, repo: &str, tag: Option<&str>) -> Pushed {
    push_image(app, repo, tag, "amd64").await.manifest
}

/// Project `keep` with three repositories and known push/pull times, an
/// immutability rule for the tag `stable`, and the policy's expectations:
///
/// - R1 latestPushedK=2 on repositories `a/**`, tagged only;
/// - R2 nDaysSinceLastPull=7 everywhere but `scratch/**`, untagged too;
/// - R3 always for tags `release-*` everywhere but `scratch/**`, tagged only;
/// - R4 always everything, but disabled.
async fn prepare(app: &ApiApp) -> Prepared {
    let project_id = app.create_project("keep", false).await;
    let ax = "keep/a/x";
    let x1 = image(app, ax, Some("v1")).await; // R1 (newest tagged)
    let x2 = image(app, ax, Some("v2")).await; // R1
    let x3 = image(app, ax, Some("v3")).await; // R2 (pulled 2 days ago)
    let x4 = image(app, ax, Some("release-1")).await; // R3
    let x5 = image(app, ax, Some("v5")).await; // nothing: pulled 9 days ago
    let x6 = image(app, ax, None).await; // nothing: untagged, never pulled
    let x7 = image(app, ax, None).await; // R2: untagged, pulled yesterday
    let x8 = image(app, ax, Some("stable")).await; // nothing, but immutable
    age(app, ax, &x1.digest, DAY, None).await;
    age(app, ax, &x2.digest, 2 * DAY, None).await;
    age(app, ax, &x3.digest, 3 * DAY, Some(2 * DAY)).await;
    age(app, ax, &x4.digest, 30 * DAY, None).await;
    age(app, ax, &x5.digest, 10 * DAY, Some(9 * DAY)).await;
    age(app, ax, &x6.digest, 12, None).await;
    age(app, ax, &x7.digest, 20 * DAY, Some(DAY)).await;
    age(app, ax, &x8.digest, 40 * DAY, None).await;

    let b = "keep/b";
    let b1 = image(app, b, Some("latest")).await; // nothing (R1 is for a/**)
    let b2 = image(app, b, Some("release-2")).await; // R3
    let b3 = image(app, b, Some("old")).await; // R2
    let c1 = image(app, b, None).await;
    let c2 = image(app, b, None).await;
    let multi = push_index(app, b, "multi", &[(&c1, "amd64"), (&c2, "arm64")]).await; // nothing
    age(app, b, &b1.digest, DAY, None).await;
    age(app, b, &b2.digest, 50 * DAY, None).await;
    age(app, b, &b3.digest, 100 * DAY, Some(3 * DAY)).await;
    age(app, b, &multi.digest, 60 * DAY, None).await;

    let scratch = "keep/scratch/tmp";
    let s1 = image(app, scratch, Some("tmp")).await; // out of scope
    age(app, scratch, &s1.digest, 100 * DAY, None).await;

    let resp = send(
        app,
        admin(app),
        reqwest::Method::POST,
        "/projects/keep/immutabletagrules",
        Some(json!({
            "action": "immutable", "template": "immutable_template",
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "stable"}],
            "scope_selectors": repo_selector("repoMatches", "**"),
        })),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", text(resp).await);

    let d = |p: &Pushed| p.digest.clone();
    Prepared {
        project_id,
        keep_ax: sorted(vec![d(&x1), d(&x2), d(&x3), d(&x4), d(&x7), d(&x8)]),
        gone_ax: sorted(vec![d(&x5), d(&x6)]),
        keep_b: sorted(vec![d(&b2), d(&b3)]),
        gone_b: sorted(vec![d(&b1), d(&multi)]),
        children: sorted(vec![d(&c1), d(&c2)]),
        scratch: vec![d(&s1)],
    }
}

fn the_policy(project_id: i64) -> Value {
    let not_scratch = repo_selector("repoExcludes", "scratch/**");
    let mut disabled = rule(
        "always",
        None,
        "**",
        None,
        repo_selector("repoMatches", "**"),
    );
    disabled["disabled"] = json!(true);
    policy(
        project_id,
        json!([
            rule(
                "latestPushedK",
                Some(2),
                "**",
                Some(false),
                repo_selector("repoMatches", "a/**")
            ),
            rule(
                "nDaysSinceLastPull",
                Some(7),
                "**",
                None,
                not_scratch.clone()
            ),
            rule("always", None, "release-*", Some(false), not_scratch),
            disabled,
        ]),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_exactly_what_a_real_run_then_deletes() {
    let app = ApiApp::spawn_with_registry().await;
    let _jobs = jobs(&app, true).await;
    let p = prepare(&app).await;
    let before_ax = holds(&app, "keep/a/x").await;
    let before_b = holds(&app, "keep/b").await;

    let id = create(&app, the_policy(p.project_id)).await;
    let (project, _) = get_json(&app, "/projects/keep").await;
    assert_eq!(
        project["metadata"]["retention_id"],
        id.to_string(),
        "{project}"
    );
    let (stored, _) = get_json(&app, &format!("/retentions/{id}")).await;
    assert_eq!(stored["id"], id);
    assert_eq!(stored["algorithm"], "or");
    assert_eq!(
        stored["scope"],
        json!({"level": "project", "ref": p.project_id})
    );
    assert_eq!(
        stored["trigger"],
        json!({"kind": "Schedule", "settings": {"cron": ""}})
    );
    assert_eq!(stored["rules"].as_array().unwrap().len(), 4);
    assert_eq!(stored["rules"][0]["id"], 1);
    assert_eq!(stored["rules"][0]["params"], json!({"latestPushedK": 2}));
    assert_eq!(
        stored["rules"][0]["tag_selectors"][0]["extras"],
        r#"{"untagged":false}"#
    );
    assert_eq!(stored["rules"][3]["disabled"], true);

    // Dry run: the logs say exactly what would go, and nothing goes.
    let dry = trigger(&app, id, true).await;
    let run = finished(&app, id, dry).await;
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(run["dry_run"], true);
    assert_eq!(run["trigger"], "MANUAL");
    assert_eq!(run["policy_id"], id);
    let dry_tasks = tasks(&app, id, dry).await;
    let repos: Vec<&str> = dry_tasks
        .iter()
        .map(|t| t["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["keep/a/x", "keep/b"], "scratch/** is out of scope");
    for t in &dry_tasks {
        assert_eq!(t["status"], "Success", "{t}");
        assert_eq!(t["execution_id"], dry);
    }
    assert_eq!(
        (
            dry_tasks[0]["total"].as_i64(),
            dry_tasks[0]["retained"].as_i64()
        ),
        (Some(8), Some(6))
    );
    assert_eq!(
        (
            dry_tasks[1]["total"].as_i64(),
            dry_tasks[1]["retained"].as_i64()
        ),
        (Some(4), Some(2))
    );
    let log_ax = task_log(&app, id, dry, dry_tasks[0]["id"].as_i64().unwrap()).await;
    let log_b = task_log(&app, id, dry, dry_tasks[1]["id"].as_i64().unwrap()).await;
    assert_eq!(marked(&log_ax, "DEL"), p.gone_ax, "{log_ax}");
    assert_eq!(marked(&log_ax, "RETAIN"), p.keep_ax, "{log_ax}");
    assert_eq!(marked(&log_b, "DEL"), p.gone_b, "{log_b}");
    assert_eq!(marked(&log_b, "RETAIN"), p.keep_b, "{log_b}");
    assert!(log_ax.contains("dry run"), "{log_ax}");
    let stable = log_ax.lines().find(|l| l.contains("tags=stable")).unwrap();
    assert!(
        stable.contains("RETAIN") && stable.contains("immutable"),
        "{stable}"
    );
    assert_eq!(
        holds(&app, "keep/a/x").await,
        before_ax,
        "a dry run deletes nothing"
    );
    assert_eq!(holds(&app, "keep/b").await, before_b);

    // The real run deletes exactly that, and what only the index held.
    let real = trigger(&app, id, false).await;
    let run = finished(&app, id, real).await;
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(run["dry_run"], false);
    let real_tasks = tasks(&app, id, real).await;
    assert_eq!(
        (
            real_tasks[0]["total"].as_i64(),
            real_tasks[0]["retained"].as_i64()
        ),
        (Some(8), Some(6))
    );
    assert_eq!(
        (
            real_tasks[1]["total"].as_i64(),
            real_tasks[1]["retained"].as_i64()
        ),
        (Some(4), Some(2))
    );
    let real_ax = task_log(&app, id, real, real_tasks[0]["id"].as_i64().unwrap()).await;
    let real_b = task_log(&app, id, real, real_tasks[1]["id"].as_i64().unwrap()).await;
    assert_eq!(marked(&real_ax, "DEL"), p.gone_ax, "{real_ax}");
    assert_eq!(marked(&real_b, "DEL"), p.gone_b, "{real_b}");
    assert!(marked(&real_b, "ERR").is_empty(), "{real_b}");
    assert_eq!(holds(&app, "keep/a/x").await, p.keep_ax);
    assert_eq!(
        holds(&app, "keep/b").await,
        p.keep_b,
        "the index's children went with it"
    );
    assert_eq!(holds(&app, "keep/scratch/tmp").await, p.scratch);
    for digest in p.gone_ax.iter() {
        assert_eq!(
            pull(&app, "keep/a/x", digest).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    for digest in p.gone_b.iter().chain(&p.children) {
        assert_eq!(
            pull(&app, "keep/b", digest).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    for digest in &p.keep_ax {
        assert_eq!(
            pull(&app, "keep/a/x", digest).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        pull(&app, "keep/a/x", "stable").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        pull(&app, "keep/b", "release-2").await.status(),
        StatusCode::OK
    );

    // The deletions are in the audit log as the retention's.
    let deletes: Vec<_> = app
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e.operation == "delete" && e.resource_type == "artifact")
        .collect();
    assert!(deletes.len() >= 4, "{deletes:?}");
    assert!(
        deletes.iter().all(|e| e.username == "tag-retention"),
        "{deletes:?}"
    );

    // History: newest first, both runs.
    let (runs, total) = get_json(&app, &format!("/retentions/{id}/executions")).await;
    assert_eq!(total.as_deref(), Some("2"));
    assert_eq!(runs[0]["id"], real);
    assert_eq!(runs[1]["id"], dry);
    assert!(runs[0]["end_time"].is_string() && runs[0]["start_time"].is_string());

    // A second run finds nothing more to delete.
    let again = trigger(&app, id, false).await;
    assert_eq!(finished(&app, id, again).await["status"], "Success");
    let again_tasks = tasks(&app, id, again).await;
    assert_eq!(
        (
            again_tasks[0]["total"].as_i64(),
            again_tasks[0]["retained"].as_i64()
        ),
        (Some(6), Some(6))
    );
    assert_eq!(
        (
            again_tasks[1]["total"].as_i64(),
            again_tasks[1]["retained"].as_i64()
        ),
        (Some(2), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_follow_the_policy_and_fire_as_runs() {
    let app = ApiApp::spawn_with_registry().await;
    let jobs = jobs(&app, false).await;
    let project_id = app.create_project("sched", false).await;
    let id = create(&app, keep_all(project_id, "")).await;
    let name = format!("retention:{id}");
    assert!(
        wharf_jobs::get_schedule(app.pool(), &name)
            .await
            .unwrap()
            .is_none()
    );

    let put = |body: Value| {
        let app = &app;
        async move {
            send(
                app,
                admin(app),
                reqwest::Method::PUT,
                &format!("/retentions/{id}"),
                Some(body),
            )
            .await
        }
    };
    let resp = put(keep_all(project_id, "0 30 2 * * *")).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", text(resp).await);
    let schedule = wharf_jobs::get_schedule(app.pool(), &name)
        .await
        .unwrap()
        .expect("scheduled");
    assert_eq!(schedule.kind, "retention");
    assert_eq!(schedule.cron, "0 30 2 * * *");
    assert_eq!(schedule.payload["policy_id"], id);
    let (stored, _) = get_json(&app, &format!("/retentions/{id}")).await;
    assert_eq!(stored["trigger"]["settings"]["cron"], "0 30 2 * * *");

    // A due tick becomes a scheduled run of the policy.
    sqlx::query(
        "UPDATE job_schedules SET next_run_at = now() - interval '1 second' WHERE name = $1",
    )
    .bind(&name)
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(jobs.fire_due_schedules().await.unwrap(), 1);
    let (runs, _) = get_json(&app, &format!("/retentions/{id}/executions")).await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["trigger"], "SCHEDULE");
    assert_eq!(runs[0]["dry_run"], false);
    assert_eq!(runs[0]["status"], "Pending");

    // A bad cron changes nothing.
    let resp = put(keep_all(project_id, "0 0 * * *")).await;
    let message = expect_error(resp, 400, "BAD_REQUEST").await;
    assert!(message.contains("6 fields"), "{message}");
    assert_eq!(
        wharf_jobs::get_schedule(app.pool(), &name)
            .await
            .unwrap()
            .unwrap()
            .cron,
        "0 30 2 * * *"
    );

    // An empty cron removes the schedule; so does deleting the policy.
    let resp = put(keep_all(project_id, "")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        wharf_jobs::get_schedule(app.pool(), &name)
            .await
            .unwrap()
            .is_none()
    );
    let resp = put(keep_all(project_id, "0 0 0 * * *")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = send(
        &app,
        admin(&app),
        reqwest::Method::DELETE,
        &format!("/retentions/{id}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        wharf_jobs::get_schedule(app.pool(), &name)
            .await
            .unwrap()
            .is_none()
    );
    let (project, _) = get_json(&app, "/projects/sched").await;
    assert!(
        project["metadata"].get("retention_id").is_none(),
        "{project}"
    );
    let resp = send(
        &app,
        admin(&app),
        reqwest::Method::GET,
        &format!("/retentions/{id}"),
        None,
    )
    .await;
    expect_error(resp, 404, "NOT_FOUND").await;
    // The project may have a policy again.
    create(&app, keep_all(project_id, "")).await;
    let audit = app.last_audit("retention").await.expect("audited");
    assert_eq!(audit.operation, "create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_deletes_nothing_and_ends_stopped() {
    let app = ApiApp::spawn_with_registry().await;
    let jobs = jobs(&app, false).await;
    let project_id = app.create_project("halt", false).await;
    let old = image(&app, "halt/app", Some("old")).await;
    age(&app, "halt/app", &old.digest, 100 * DAY, None).await;
    let keep_nothing = policy(
        project_id,
        json!([rule(
            "latestPushedK",
            Some(0),
            "**",
            None,
            repo_selector("repoMatches", "**")
        )]),
        "",
    );
    let id = create(&app, keep_nothing).await;

    // Stopped while waiting: it never runs.
    let eid = trigger(&app, id, false).await;
    let stop = |eid: i64, action: &'static str| {
        let app = &app;
        async move {
            send(
                app,
                admin(app),
                reqwest::Method::PATCH,
                &format!("/retentions/{id}/executions/{eid}"),
                Some(json!({ "action": action })),
            )
            .await
        }
    };
    let resp = stop(eid, "pause").await;
    let message = expect_error(resp, 400, "BAD_REQUEST").await;
    assert!(message.contains("stop"), "{message}");
    let resp = stop(eid, "stop").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", text(resp).await);
    drop(jobs.run_worker(2, std::future::pending()));
    assert_eq!(finished(&app, id, eid).await["status"], "Stopped");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(holds(&app, "halt/app").await, vec![old.digest.clone()]);
    let resp = stop(999_999, "stop").await;
    expect_error(resp, 404, "NOT_FOUND").await;

    // Stopped while running: the job sees the request and ends Stopped.
    let parameters = json!({"policy_id": id, "project_id": project_id, "dry_run": false});
    let mut tx = app.pool().begin().await.unwrap();
    let running = wharf_jobs::create_execution(
        &mut *tx,
        wharf_projects::retention::KIND,
        wharf_jobs::Trigger::Manual,
        parameters.clone(),
        Some(project_id),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    wharf_jobs::start(app.pool(), running).await.unwrap();
    let resp = stop(running, "stop").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let handler = RetentionJob::new(job_registry(&app).await);
    let ctx = wharf_jobs::JobContext {
        pool: app.pool().clone(),
        attempt: 1,
        max_attempts: 3,
        kind: wharf_projects::retention::KIND.into(),
        job_id: 0,
        execution_id: Some(running),
        resumed: false,
    };
    use wharf_jobs::JobHandler as _;
    handler
        .run(ctx, wharf_jobs::with_execution(parameters, running))
        .await
        .expect("a stopped run ends cleanly");
    let execution = wharf_jobs::get_execution(app.pool(), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.status, wharf_jobs::ExecutionStatus::Stopped);
    assert_eq!(holds(&app, "halt/app").await, vec![old.digest.clone()]);

    // Not stopped, the same policy deletes it.
    let eid = trigger(&app, id, false).await;
    assert_eq!(finished(&app, id, eid).await["status"], "Success");
    assert!(holds(&app, "halt/app").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_may_do_what() {
    let app = ApiApp::spawn_with_registry().await;
    // The queue must exist for runs to be enqueued (no worker: they wait).
    let _jobs = jobs(&app, false).await;
    let project_id = app.create_project("team", false).await;
    let id = create(&app, keep_all(project_id, "")).await;
    let mut people = Vec::new();
    for (name, role) in [
        ("padmin", Some(Role::ProjectAdmin)),
        ("maint", Some(Role::Maintainer)),
        ("dev", Some(Role::Developer)),
        ("guest", Some(Role::Guest)),
        ("lguest", Some(Role::LimitedGuest)),
        ("outsider", None),
    ] {
        let (u, password) = user(&app, name).await;
        if let Some(role) = role {
            app.add_member(project_id, u.id, role).await;
        }
        people.push((name, password));
    }
    let get = format!("/retentions/{id}");
    let runs = format!("/retentions/{id}/executions");
    for (name, password) in &people {
        let who = Some((*name, password.as_str()));
        let resp = send(&app, who, reqwest::Method::GET, &get, None).await;
        let runs_resp = send(&app, who, reqwest::Method::GET, &runs, None).await;
        let put = send(
            &app,
            who,
            reqwest::Method::PUT,
            &get,
            Some(keep_all(project_id, "")),
        )
        .await;
        match *name {
            "padmin" | "maint" | "dev" => {
                assert_eq!(resp.status(), StatusCode::OK, "{name}");
                assert_eq!(runs_resp.status(), StatusCode::OK, "{name}");
                assert_eq!(put.status(), StatusCode::OK, "{name}");
            }
            "guest" | "lguest" => {
                expect_error(resp, 403, "FORBIDDEN").await;
                expect_error(runs_resp, 403, "FORBIDDEN").await;
                expect_error(put, 403, "FORBIDDEN").await;
            }
            _ => {
                expect_error(resp, 404, "NOT_FOUND").await;
                expect_error(runs_resp, 404, "NOT_FOUND").await;
                expect_error(put, 404, "NOT_FOUND").await;
            }
        }
    }
    // Developers may run and delete policies; guests may not create one.
    let dev = people.iter().find(|(n, _)| *n == "dev").unwrap();
    let dev = Some(("dev", dev.1.as_str()));
    let resp = send(
        &app,
        dev,
        reqwest::Method::POST,
        &runs,
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", text(resp).await);
    let other = app.create_project("other", false).await;
    let guest = people.iter().find(|(n, _)| *n == "guest").unwrap();
    let guest_id = wharf_projects::get_user_by_name(app.pool(), "guest")
        .await
        .unwrap()
        .id;
    app.add_member(other, guest_id, Role::Guest).await;
    let resp = send(
        &app,
        Some(("guest", guest.1.as_str())),
        reqwest::Method::POST,
        "/retentions",
        Some(keep_all(other, "")),
    )
    .await;
    expect_error(resp, 403, "FORBIDDEN").await;
    // Outsiders learn nothing about a project they cannot see.
    let outsider = people.iter().find(|(n, _)| *n == "outsider").unwrap();
    let resp = send(
        &app,
        Some(("outsider", outsider.1.as_str())),
        reqwest::Method::POST,
        "/retentions",
        Some(keep_all(other, "")),
    )
    .await;
    let hidden = expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = send(
        &app,
        Some(("outsider", outsider.1.as_str())),
        reqwest::Method::POST,
        "/retentions",
        Some(keep_all(987_654, "")),
    )
    .await;
    let missing = expect_error(resp, 400, "BAD_REQUEST").await;
    assert_eq!(
        hidden.replace(&other.to_string(), "N"),
        missing.replace("987654", "N")
    );

    // Anonymous callers are asked to sign in, even for the metadata.
    let resp = send(&app, None, reqwest::Method::GET, &get, None).await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
    let resp = send(
        &app,
        None,
        reqwest::Method::GET,
        "/retentions/metadatas",
        None,
    )
    .await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
    let (meta, _) = get_json(&app, "/retentions/metadatas").await;
    assert_eq!(meta["templates"].as_array().unwrap().len(), 5);

    // Robots hold what they are granted.
    let (robot, secret) = app
        .robot(
            "reader",
            &[("project", "team", &[("tag-retention", "read")])],
        )
        .await;
    let who = Some((robot.as_str(), secret.as_str()));
    let resp = send(&app, who, reqwest::Method::GET, &get, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = send(&app, who, reqwest::Method::DELETE, &get, None).await;
    expect_error(resp, 403, "FORBIDDEN").await;
    let padmin = people.iter().find(|(n, _)| *n == "padmin").unwrap();
    let resp = send(
        &app,
        Some(("padmin", padmin.1.as_str())),
        reqwest::Method::DELETE,
        &get,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_with_the_reason() {
    let app = ApiApp::spawn_with_registry().await;
    let project_id = app.create_project("strict", false).await;
    let post = |body: Value| {
        let app = &app;
        async move {
            send(
                app,
                admin(app),
                reqwest::Method::POST,
                "/retentions",
                Some(body),
            )
            .await
        }
    };
    let any = || repo_selector("repoMatches", "**");
    let cases: Vec<(Value, &str)> = vec![
        (
            policy(
                project_id,
                json!([rule("newestK", Some(1), "**", None, any())]),
                "",
            ),
            "unknown rule template",
        ),
        (
            policy(
                project_id,
                json!([rule("latestPushedK", None, "**", None, any())]),
                "",
            ),
            "missing required parameter latestPushedK",
        ),
        (
            policy(
                project_id,
                json!([rule("latestPushedK", Some(-2), "**", None, any())]),
                "",
            ),
            "less than zero",
        ),
        (
            policy(
                project_id,
                json!([rule(
                    "nDaysSinceLastPull",
                    Some(99_999_999),
                    "**",
                    None,
                    any()
                )]),
                "",
            ),
            "too large",
        ),
        (
            policy(
                project_id,
                json!([rule("always", None, "", None, any())]),
                "",
            ),
            "pattern is required",
        ),
        (
            policy(
                project_id,
                json!([rule("always", None, "{v1,v2", None, any())]),
                "",
            ),
            "tag selector",
        ),
        (
            policy(
                project_id,
                json!([rule(
                    "always",
                    None,
                    "**",
                    None,
                    repo_selector("matches", "**")
                )]),
                "",
            ),
            "repoMatches or repoExcludes",
        ),
        (
            policy(
                project_id,
                json!([rule("always", None, "**", None, json!({"namespace": []}))]),
                "",
            ),
            "namespace",
        ),
        (
            policy(
                project_id,
                json!([rule("always", None, "**", None, any())]),
                "0 0 * * *",
            ),
            "6 fields",
        ),
        (
            policy(
                project_id,
                json!([rule("always", None, "**", None, any())]),
                "0 0 0 31 2 *",
            ),
            "never fires",
        ),
    ];
    for (body, expected) in cases {
        let message = expect_error(post(body.clone()).await, 400, "BAD_REQUEST").await;
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?} for {body}"
        );
    }
    let mut bad_params = policy(
        project_id,
        json!([rule("latestPulledN", Some(1), "**", None, any())]),
        "",
    );
    bad_params["rules"][0]["params"] = json!({"latestPulledN": "ten"});
    let message = expect_error(post(bad_params).await, 400, "BAD_REQUEST").await;
    assert!(message.contains("whole number"), "{message}");
    let mut bad_extras = policy(
        project_id,
        json!([rule("always", None, "**", None, any())]),
        "",
    );
    bad_extras["rules"][0]["tag_selectors"][0]["extras"] = json!("untagged=yes");
    let message = expect_error(post(bad_extras).await, 400, "BAD_REQUEST").await;
    assert!(message.contains("extras"), "{message}");
    let mut bad_kind = policy(
        project_id,
        json!([rule("always", None, "**", None, any())]),
        "",
    );
    bad_kind["trigger"]["kind"] = json!("Event");
    expect_error(post(bad_kind).await, 400, "BAD_REQUEST").await;
    let sixteen: Vec<Value> = (0..16)
        .map(|k| rule("latestPushedK", Some(k), "**", None, any()))
        .collect();
    let message = expect_error(
        post(policy(project_id, json!(sixteen), "")).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    assert!(message.contains("15 rules"), "{message}");
    let twice = rule("always", None, "**", None, any());
    expect_error(
        post(policy(project_id, json!([twice.clone(), twice]), "")).await,
        409,
        "CONFLICT",
    )
    .await;
    let resp = send(
        &app,
        admin(&app),
        reqwest::Method::POST,
        "/retentions",
        None,
    )
    .await;
    expect_error(resp, 400, "BAD_REQUEST").await;
    assert!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM retention_policies")
            .fetch_one(app.pool())
            .await
            .unwrap()
            == 0,
        "nothing was stored"
    );

    // One policy per project; its scope cannot move.
    let id = create(&app, keep_all(project_id, "")).await;
    let message = expect_error(post(keep_all(project_id, "")).await, 400, "BAD_REQUEST").await;
    assert!(
        message.contains("already has retention policy"),
        "{message}"
    );
    let other = app.create_project("elsewhere", false).await;
    let resp = send(
        &app,
        admin(&app),
        reqwest::Method::PUT,
        &format!("/retentions/{id}"),
        Some(keep_all(other, "")),
    )
    .await;
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = send(
        &app,
        admin(&app),
        reqwest::Method::GET,
        "/retentions/abc",
        None,
    )
    .await;
    expect_error(resp, 400, "BAD_REQUEST").await;
}
