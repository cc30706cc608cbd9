//! `/system/purgeaudit`: the purge schedule, manual runs, history, logs and
//! stopping, with the purge job running on real `wharf_jobs` workers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_robots::user;
use crate::api_support::{ApiApp, expect_error, id_from_location, json_body, location, text};

/// The job system on the test database with this crate's jobs registered;
/// `worker` says whether to run a worker (off to keep executions pending).
async fn jobs(app: &ApiApp, worker: bool) -> wharf_jobs::Jobs {
    let mut jobs = wharf_jobs::Jobs::start(app.pool().clone())
        .await
        .expect("jobs start");
    wharf_projects::jobs::register_jobs(&mut jobs);
    if worker {
        // Detached: it runs until the test's runtime ends.
        drop(jobs.run_worker(2, std::future::pending()));
    }
    jobs
}

/// Audit rows straight into the table, `hours_ago` old; returns their ids.
async fn seed(app: &ApiApp, operation: &str, hours_ago: i64, n: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "INSERT INTO audit_logs (username, operation, resource_type, resource, op_time) \
         SELECT 'alice', $1, 'artifact', 'library/app:v' || g, now() - make_interval(hours => $2::int) \
         FROM generate_series(1, $3) g RETURNING id",
    )
    .bind(operation)
    .bind(hours_ago as i32)
    .bind(n)
    .fetch_all(app.pool())
    .await
    .expect("seed audit rows")
}

async fn existing(app: &ApiApp, ids: &[i64]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// POST a Manual purge as admin; returns the execution id.
async fn run_now(app: &ApiApp, parameters: Value) -> i64 {
    let resp = app
        .as_admin(app.client.post(app.url("/system/purgeaudit/schedule")))
        .json(&json!({"schedule": {"type": "Manual"}, "parameters": parameters}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let loc = location(&resp);
    assert_eq!(status, StatusCode::CREATED, "{}", text(resp).await);
    assert!(loc.starts_with("/api/v2.0/system/purgeaudit/"), "{loc}");
    id_from_location(&loc)
}

async fn get_json(app: &ApiApp, path: &str) -> Value {
    let resp = app
        .as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    json_body(resp).await
}

/// Wait for the execution to reach a final status; returns its history item.
async fn finished(app: &ApiApp, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let item = get_json(app, &format!("/system/purgeaudit/{id}")).await;
        if matches!(
            item["job_status"].as_str(),
            Some("Success" | "Error" | "Stopped")
        ) {
            return item;
        }
        assert!(
            Instant::now() < deadline,
            "purge {id} did not finish: {item}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_of(app: &ApiApp, id: i64) -> String {
    let resp = app
        .as_admin(
            app.client
                .get(app.url(&format!("/system/purgeaudit/{id}/log"))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_purge_deletes_exactly_the_old_entries_of_the_chosen_operations() {
    let app = ApiApp::spawn().await;
    let _jobs = jobs(&app, true).await;
    let old_create = seed(&app, "create", 48, 3).await;
    let old_pull = seed(&app, "pull", 30, 4).await;
    let old_delete = seed(&app, "delete", 48, 2).await;
    let recent_create = seed(&app, "create", 1, 2).await;
    let recent_pull = seed(&app, "pull", 23, 2).await;

    let params =
        json!({"audit_retention_hour": 24, "include_operations": "create,pull", "dry_run": false});
    let id = run_now(&app, params).await;
    let item = finished(&app, id).await;
    assert_eq!(item["job_status"], "Success", "{item}");
    assert_eq!(item["job_name"], "PURGE_AUDIT_LOG");
    assert_eq!(item["job_kind"], "MANUAL");
    assert_eq!(item["schedule"]["type"], "MANUAL");
    assert_eq!(item["deleted"], false);
    let job_parameters: Value = serde_json::from_str(
        item["job_parameters"]
            .as_str()
            .expect("parameters are a string"),
    )
    .unwrap();
    assert_eq!(
        job_parameters,
        json!({"audit_retention_hour": 24, "include_operations": "create,pull", "dry_run": false})
    );

    assert_eq!(existing(&app, &old_create).await, 0);
    assert_eq!(existing(&app, &old_pull).await, 0);
    assert_eq!(
        existing(&app, &old_delete).await,
        2,
        "other operations stay"
    );
    assert_eq!(
        existing(&app, &recent_create).await,
        2,
        "young entries stay"
    );
    assert_eq!(existing(&app, &recent_pull).await, 2);
    let log = log_of(&app, id).await;
    assert!(log.contains("purged 7 audit log entries"), "{log}");
    assert!(
        log.contains("older than 24 hours, operations: create,pull"),
        "{log}"
    );

    // The run itself is in the audit log (and was not purged: it is new).
    let entry = app.last_audit("purge_audit").await.expect("audited");
    assert_eq!(
        (entry.username.as_str(), entry.operation.as_str()),
        ("admin", "create")
    );

    // History: newest first, with a total.
    let second = run_now(
        &app,
        json!({"audit_retention_hour": 24, "include_operations": "update"}),
    )
    .await;
    finished(&app, second).await;
    let resp = app
        .as_admin(
            app.client
                .get(app.url("/system/purgeaudit?page=1&page_size=1")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "2");
    assert!(resp.headers().contains_key("link"));
    let page = json_body(resp).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], second);
    let oldest = get_json(&app, "/system/purgeaudit?sort=creation_time").await;
    assert_eq!(oldest[0]["id"], id);
    let ok = get_json(&app, "/system/purgeaudit?q=status%3DSuccess").await;
    assert_eq!(ok.as_array().unwrap().len(), 2);
    let none = get_json(&app, "/system/purgeaudit?q=status%3DError").await;
    assert_eq!(none, json!([]));
    let resp = app
        .as_admin(app.client.get(app.url("/system/purgeaudit?sort=bogus")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing_and_says_how_much_it_would() {
    let app = ApiApp::spawn().await;
    let _jobs = jobs(&app, true).await;
    let old = seed(&app, "create", 100, 5).await;
    let id = run_now(
        &app,
        json!({"audit_retention_hour": 24, "include_operations": "create,delete,pull", "dry_run": true}),
    )
    .await;
    let item = finished(&app, id).await;
    assert_eq!(item["job_status"], "Success");
    assert_eq!(existing(&app, &old).await, 5);
    let log = log_of(&app, id).await;
    assert!(
        log.contains("dry run: 5 audit log entries would be deleted"),
        "{log}"
    );
    assert!(log.contains("(dry run)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_purge_goes_in_batches() {
    let app = ApiApp::spawn().await;
    let _jobs = jobs(&app, true).await;
    let batch = wharf_projects::jobs::purge_audit::BATCH;
    let old = seed(&app, "pull", 72, 2 * batch + 17).await;
    let keep = seed(&app, "pull", 1, 3).await;
    let id = run_now(
        &app,
        json!({"audit_retention_hour": 48, "include_operations": "pull"}),
    )
    .await;
    let item = finished(&app, id).await;
    assert_eq!(item["job_status"], "Success");
    assert_eq!(existing(&app, &old).await, 0);
    assert_eq!(existing(&app, &keep).await, 3);
    let log = log_of(&app, id).await;
    assert!(
        log.contains(&format!("deleted {batch} audit log entries so far")),
        "{log}"
    );
    assert!(
        log.contains(&format!("deleted {} audit log entries so far", 2 * batch)),
        "{log}"
    );
    assert!(
        log.contains(&format!("purged {} audit log entries", 2 * batch + 17)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_purge_never_runs() {
    let app = ApiApp::spawn().await;
    // No worker yet: the execution stays Pending.
    let jobs = jobs(&app, false).await;
    let old = seed(&app, "create", 48, 3).await;
    let id = run_now(
        &app,
        json!({"audit_retention_hour": 1, "include_operations": "create"}),
    )
    .await;
    assert_eq!(
        get_json(&app, &format!("/system/purgeaudit/{id}")).await["job_status"],
        "Pending"
    );
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/system/purgeaudit/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        get_json(&app, &format!("/system/purgeaudit/{id}")).await["job_status"],
        "Stopped"
    );
    let _worker = jobs.run_worker(1, std::future::pending());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !jobs.queue_depth().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the stopped job was not dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        existing(&app, &old).await,
        3,
        "a stopped purge deletes nothing"
    );
    assert_eq!(
        get_json(&app, &format!("/system/purgeaudit/{id}")).await["job_status"],
        "Stopped"
    );
    // Stopping again is harmless; unknown ids are 404.
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/system/purgeaudit/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for path in ["/system/purgeaudit/99999", "/system/purgeaudit/99999/log"] {
        let resp = app
            .as_admin(app.client.get(app.url(path)))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "NOT_FOUND").await;
    }
    let resp = app
        .as_admin(app.client.put(app.url("/system/purgeaudit/99999")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    // An execution of another kind is not a purge.
    let other = wharf_jobs::create_execution(
        app.pool(),
        "gc",
        wharf_jobs::Trigger::Manual,
        json!({}),
        None,
    )
    .await
    .unwrap();
    let resp = app
        .as_admin(
            app.client
                .get(app.url(&format!("/system/purgeaudit/{other}"))),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_is_set_read_changed_and_removed() {
    let app = ApiApp::spawn().await;
    let _jobs = jobs(&app, false).await;
    let path = "/system/purgeaudit/schedule";
    // None yet: an empty 200, as Harbor.
    let resp = app
        .as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "");

    let params = json!({"audit_retention_hour": 168, "include_operations": "create,delete,pull", "dry_run": true});
    let resp = app
        .as_admin(app.client.post(app.url(path)))
        .json(&json!({"schedule": {"type": "Hourly", "cron": "0 0 * * * *"}, "parameters": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", text(resp).await);
    let s = get_json(&app, path).await;
    assert_eq!(s["schedule"]["type"], "Hourly");
    assert_eq!(s["schedule"]["cron"], "0 0 * * * *");
    assert_eq!(s["job_kind"], "0 0 * * * *");
    let next: chrono::DateTime<chrono::Utc> = s["schedule"]["next_scheduled_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > chrono::Utc::now() && next.timestamp() % 3600 == 0,
        "{next}"
    );
    let p: Value = serde_json::from_str(s["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(p, params);
    let entry = app.last_audit("purge_audit").await.expect("audited");
    assert_eq!(entry.operation, "update");

    let resp = app
        .as_admin(app.client.put(app.url(path)))
        .json(
            &json!({"schedule": {"type": "Custom", "cron": "0 30 1 * * 6"}, "parameters": params}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", text(resp).await);
    let s = get_json(&app, path).await;
    assert_eq!(s["schedule"]["type"], "Custom");
    assert_eq!(s["schedule"]["cron"], "0 30 1 * * 6");

    // Refused: a five-field cron, no parameters, no retention, no schedule.
    for body in [
        json!({"schedule": {"type": "Custom", "cron": "30 1 * * 6"}, "parameters": params}),
        json!({"schedule": {"type": "Custom"}, "parameters": params}),
        json!({"schedule": {"type": "Daily"}, "parameters": {}}),
        json!({"schedule": {"type": "Daily"}, "parameters": {"include_operations": "create"}}),
        json!({"schedule": {"type": "Daily"}, "parameters": {"audit_retention_hour": 1}}),
        json!({"schedule": {"type": "Fortnightly"}, "parameters": params}),
        json!({"parameters": params}),
    ] {
        let resp = app
            .as_admin(app.client.put(app.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(resp, 400, "BAD_REQUEST").await;
        assert!(!message.is_empty());
    }
    let resp = app
        .as_admin(app.client.put(app.url(path)))
        .json(&json!({"schedule": {"type": "Custom", "cron": "30 1 * * 6"}, "parameters": params}))
        .send()
        .await
        .unwrap();
    let message = expect_error(resp, 400, "BAD_REQUEST").await;
    assert!(message.contains("expected 6 fields"), "{message}");
    // Unchanged by the refusals.
    assert_eq!(
        get_json(&app, path).await["schedule"]["cron"],
        "0 30 1 * * 6"
    );

    let resp = app
        .as_admin(app.client.put(app.url(path)))
        .json(&json!({"schedule": {"type": "None"}, "parameters": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(
        app.last_audit("purge_audit").await.unwrap().operation,
        "delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_purge_runs_on_its_tick() {
    let app = ApiApp::spawn().await;
    let jobs = jobs(&app, true).await;
    let _scheduler = jobs.run_scheduler(std::future::pending());
    let old = seed(&app, "delete", 10, 2).await;
    let resp = app
        .as_admin(app.client.post(app.url("/system/purgeaudit/schedule")))
        .json(&json!({
            "schedule": {"type": "Custom", "cron": "* * * * * *"},
            "parameters": {"audit_retention_hour": 5, "include_operations": "delete"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let history = get_json(&app, "/system/purgeaudit?sort=id").await;
        if let Some(first) = history.as_array().and_then(|h| h.first()).cloned()
            && first["job_status"] == "Success"
        {
            break first;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled purge finished: {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first["job_kind"], "SCHEDULE");
    assert_eq!(first["schedule"]["type"], "SCHEDULE");
    assert_eq!(existing(&app, &old).await, 0);
    let resp = app
        .as_admin(app.client.put(app.url("/system/purgeaudit/schedule")))
        .json(&json!({"schedule": {"type": "None"}, "parameters": {"audit_retention_hour": 5, "include_operations": "delete"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_system_administrators_and_granted_robots_may_purge() {
    let app = ApiApp::spawn().await;
    let _jobs = jobs(&app, false).await;
    let (_alice, password) = user(&app, "alice").await;
    let id = run_now(
        &app,
        json!({"audit_retention_hour": 1, "include_operations": "create"}),
    )
    .await;
    let body = json!({"schedule": {"type": "Manual"}, "parameters": {"audit_retention_hour": 1, "include_operations": "create"}});
    let requests = |app: &ApiApp| {
        vec![
            app.client.get(app.url("/system/purgeaudit")),
            app.client.get(app.url(&format!("/system/purgeaudit/{id}"))),
            app.client
                .get(app.url(&format!("/system/purgeaudit/{id}/log"))),
            app.client.put(app.url(&format!("/system/purgeaudit/{id}"))),
            app.client.get(app.url("/system/purgeaudit/schedule")),
            app.client
                .post(app.url("/system/purgeaudit/schedule"))
                .json(&body),
            app.client
                .put(app.url("/system/purgeaudit/schedule"))
                .json(&body),
        ]
    };
    for rb in requests(&app) {
        expect_error(rb.send().await.unwrap(), 401, "UNAUTHORIZED").await;
    }
    for rb in requests(&app) {
        let resp = app.as_basic(rb, "alice", &password).send().await.unwrap();
        expect_error(resp, 403, "FORBIDDEN").await;
    }
    // Still pending: nobody above could stop or start anything.
    let executions: i64 = sqlx::query_scalar("SELECT count(*) FROM job_executions")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(executions, 1);
    assert_eq!(
        get_json(&app, &format!("/system/purgeaudit/{id}")).await["job_status"],
        "Pending"
    );

    // A robot granted purge-audit:list may list but not run.
    let (reader, secret) = app
        .robot(
            "purge-reader",
            &[("system", "/", &[("purge-audit", "list")])],
        )
        .await;
    let resp = app
        .as_basic(
            app.client.get(app.url("/system/purgeaudit")),
            &reader,
            &secret,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .as_basic(
            app.client.post(app.url("/system/purgeaudit/schedule")),
            &reader,
            &secret,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    // One granted purge-audit:create may run a purge.
    let (runner, secret) = app
        .robot(
            "purge-runner",
            &[("system", "/", &[("purge-audit", "create")])],
        )
        .await;
    let resp = app
        .as_basic(
            app.client.post(app.url("/system/purgeaudit/schedule")),
            &runner,
            &secret,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let entry = app.last_audit("purge_audit").await.unwrap();
    assert_eq!(entry.username, runner);
}
