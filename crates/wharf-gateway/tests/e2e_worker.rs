//! `wharf worker`: background jobs run in a process of their own while the
//! serving replica runs none (`jobs.workers = 0`), sharing one queue.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor};

async fn gc_item(http: &reqwest::Client, base: &str, id: i64) -> Value {
    http.get(format!("{base}/api/v2.0/system/gc/{id}"))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queued_by_a_server_without_workers_run_in_wharf_worker() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: background jobs are Wharf's");
        return;
    }
    let server = backend
        .start_with_env(&[("WHARF_JOBS_WORKERS", "0".into())])
        .await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v2.0/system/gc/schedule", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id: i64 = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .expect("Location names the run");

    // Nobody runs it yet: the server has no workers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let item = gc_item(&http, &server.base, id).await;
    assert_eq!(item["job_status"], "Pending", "{item}");

    let metrics_port = support::free_port();
    let worker =
        backend.start_worker(&[("WHARF_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let item = gc_item(&http, &server.base, id).await;
        match item["job_status"].as_str() {
            Some("Success") => break,
            Some("Pending" | "Running") => {}
            other => panic!("the run ended {other:?}: {item}\n{}", worker.log()),
        }
        assert!(
            Instant::now() < deadline,
            "the worker never ran the job: {item}\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        worker.log().contains("wharf worker is running jobs"),
        "{}",
        worker.log()
    );
    // The worker counts the job it ran on its own metrics listener.
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gc_successes = metrics
        .lines()
        .find(|l| {
            l.starts_with("wharf_jobs_total{")
                && l.contains("kind=\"gc\"")
                && l.contains("outcome=\"succeeded\"")
        })
        .unwrap_or_else(|| panic!("no gc success counted:\n{metrics}"));
    assert!(gc_successes.ends_with(" 1"), "{gc_successes}");
}
