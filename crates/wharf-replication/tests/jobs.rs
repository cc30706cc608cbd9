//! Replication executions on the wharf-jobs queue: a filtered push policy
//! with flattening run by a worker, and an execution whose destination is
//! down at first, retried with backoff and finished once it is back.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use wharf_jobs::{ExecutionStatus, Jobs, Trigger};
use wharf_replication::crypto::SecretKey;
use wharf_replication::policies::{self, JOB_KIND, PolicySpec, ReplicationJob};
use wharf_replication::registries::{Registries, RegistryKind, RegistrySpec};

mod support;
use support::*;

async fn registry(registries: &Registries, name: &str, base: &str, auth: bool) -> i64 {
    registries
        .create(&RegistrySpec {
            name: name.into(),
            kind: RegistryKind::DockerRegistry,
            url: base.into(),
            description: String::new(),
            access_key: auth.then(|| USER.to_owned()),
            access_secret: auth.then(|| PASSWORD.to_owned()),
            insecure: false,
        })
        .await
        .unwrap()
        .id
}

async fn worker(pool: &PgPool, registries: Registries) -> Jobs {
    let mut jobs = Jobs::start(pool.clone()).await.unwrap();
    jobs.register(JOB_KIND, ReplicationJob::new(registries));
    // Detached: the worker runs until the test's runtime ends.
    drop(jobs.run_worker(2, std::future::pending()));
    jobs
}

async fn wait_final(pool: &PgPool, id: i64, within: Duration) -> wharf_jobs::Execution {
    let deadline = Instant::now() + within;
    loop {
        let e = wharf_jobs::get_execution(pool, id).await.unwrap().unwrap();
        if e.status.is_final() {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} still {:?}",
            e.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn manual_push_policy_with_filters_and_flattening() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(true);
    let src = client(&src_reg, false);
    let key = std::sync::Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let shared = random(100_000);
    push_image(&src, "prod/team/api", "v1", &[shared.clone(), random(1000)]).await;
    push_image(&src, "prod/team/api", "dev", &[random(1000)]).await;
    push_image(&src, "prod/web", "v2", std::slice::from_ref(&shared)).await;
    push_image(&src, "test/web", "v1", &[random(1000)]).await;

    let src_id = registry(&registries, "prod", &src_reg.base, false).await;
    let dst_id = registry(&registries, "dr", &dst_reg.base, true).await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "to-dr".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            dest_namespace: Some("mirror".into()),
            dest_namespace_replace_count: -1,
            name_filter: Some("prod/**".into()),
            tag_filter: Some("v*".into()),
            override_tags: true,
            enabled: true,
            copy_by_chunk: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        policies::create_policy(
            &db.pool,
            &PolicySpec {
                name: "bad".into(),
                src_registry_id: Some(src_id),
                dest_registry_id: Some(999),
                enabled: true,
                ..Default::default()
            }
        )
        .await
        .unwrap_err()
        .to_string()
        .contains("does not exist")
    );

    let _jobs = worker(&db.pool, registries.clone()).await;
    let id = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();
    let done = wait_final(&db.pool, id, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Success,
        "{:?}",
        wharf_jobs::get_log(&db.pool, id).await
    );
    let result = done.result.unwrap();
    assert_eq!(result["total"], 2);
    assert_eq!(result["blobs_mounted"], 1, "{result}");

    let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
    let mut pairs: Vec<(String, String, String)> = tasks
        .iter()
        .map(|t| {
            (
                t.src_resource.clone(),
                t.dst_resource.clone(),
                t.status.clone(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            (
                "prod/team/api:v1".to_owned(),
                "mirror/api:v1".to_owned(),
                "Succeed".to_owned()
            ),
            (
                "prod/web:v2".to_owned(),
                "mirror/web:v2".to_owned(),
                "Succeed".to_owned()
            ),
        ]
    );
    assert!(
        tasks
            .iter()
            .all(|t| t.attempts == 1 && t.finished_at.is_some())
    );
    let dst = client(&dst_reg, true);
    let mut repos = dst.catalog().await.unwrap();
    repos.sort();
    assert_eq!(repos, ["mirror/api", "mirror/web"]);
    assert_eq!(dst.tags("mirror/api").await.unwrap(), ["v1"]);
}

#[tokio::test]
async fn execution_retries_until_destination_is_back_and_skips_finished_tasks() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let src = client(&src_reg, false);
    push_image(&src, "app", "v1", &[random(50_000)]).await;
    push_image(&src, "app", "v2", &[random(50_000)]).await;
    let key = std::sync::Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let port = free_port();
    let src_id = registry(&registries, "src", &src_reg.base, false).await;
    let dst_id = registry(
        &registries,
        "dst",
        &format!("http://127.0.0.1:{port}"),
        false,
    )
    .await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "pull".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            enabled: true,
            override_tags: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _jobs = worker(&db.pool, registries.clone()).await;
    let id = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();

    // The destination is down: the first attempt fails every task.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
        if tasks.len() == 2 && tasks.iter().all(|t| t.status == "Failed") {
            assert!(tasks[0].error.contains("127.0.0.1"), "{}", tasks[0].error);
            break;
        }
        assert!(Instant::now() < deadline, "tasks never failed: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = wharf_jobs::get_execution(&db.pool, id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !running.status.is_final(),
        "a transient failure is retried, not final"
    );

    let dst_reg = start_distribution_on(port, false);
    let done = wait_final(&db.pool, id, Duration::from_secs(60)).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Success,
        "{:?}",
        wharf_jobs::get_log(&db.pool, id).await
    );
    let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t.status == "Succeed" && t.attempts == 2),
        "{tasks:?}"
    );
    let dst = client(&dst_reg, false);
    let mut tags = dst.tags("app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    // A second execution finds everything there: nothing is transferred.
    let again = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();
    let done = wait_final(&db.pool, again, Duration::from_secs(60)).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    assert_eq!(done.result.unwrap()["bytes_copied"], 0);

    // v2 deleted at the source: a policy with replicate_deletion deletes
    // it at the destination; one without leaves it.
    let v2 = src.head_manifest("app", "v2").await.unwrap().unwrap();
    assert!(src.delete_manifest("app", &v2).await.unwrap());
    let keep = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(
        wait_final(&db.pool, keep, Duration::from_secs(60))
            .await
            .status,
        ExecutionStatus::Success
    );
    assert!(dst.head_manifest("app", "v2").await.unwrap().is_some());
    let mirror = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "mirror-deletes".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            enabled: true,
            replicate_deletion: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let del = policies::start_execution(&db.pool, mirror.id, Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(
        wait_final(&db.pool, del, Duration::from_secs(60))
            .await
            .status,
        ExecutionStatus::Success
    );
    let tasks = policies::list_tasks(&db.pool, del).await.unwrap();
    assert!(
        tasks.iter().any(|t| t.operation == "deletion"
            && t.dst_resource == "app:v2"
            && t.status == "Succeed"),
        "{tasks:?}"
    );
    assert_eq!(dst.head_manifest("app", "v2").await.unwrap(), None);
    assert!(dst.head_manifest("app", "v1").await.unwrap().is_some());
}

#[tokio::test]
async fn cron_trigger_starts_scheduled_executions() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(false);
    let src = client(&src_reg, false);
    push_image(&src, "cron/app", "v1", &[random(10_000)]).await;
    let key = std::sync::Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let src_id = registry(&registries, "src", &src_reg.base, false).await;
    let dst_id = registry(&registries, "dst", &dst_reg.base, false).await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "nightly".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        policies::set_cron_trigger(&db.pool, policy.id, Some("not a cron"))
            .await
            .is_err()
    );
    policies::set_cron_trigger(&db.pool, policy.id, Some("* * * * * *"))
        .await
        .unwrap();
    let jobs = worker(&db.pool, registries.clone()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(jobs.fire_due_schedules().await.unwrap() >= 1);
    let (id,): (i64,) = sqlx::query_as(
        "SELECT id FROM job_executions WHERE kind = $1 AND \"trigger\" = 'Schedule' ORDER BY id LIMIT 1",
    )
    .bind(JOB_KIND)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let done = wait_final(&db.pool, id, Duration::from_secs(60)).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    assert_eq!(
        client(&dst_reg, false).tags("cron/app").await.unwrap(),
        ["v1"]
    );

    // Deleting the policy removes its schedule.
    assert!(policies::delete_policy(&db.pool, policy.id).await.unwrap());
    assert!(
        wharf_jobs::get_schedule(&db.pool, &policies::schedule_name(policy.id))
            .await
            .unwrap()
            .is_none()
    );
}

fn fast_timings() -> wharf_jobs::WorkerTimings {
    wharf_jobs::WorkerTimings {
        heartbeat_interval: Duration::from_millis(500),
        sweep_interval: Duration::from_millis(500),
        sweep_threshold: Duration::from_secs(2),
        recovery_delay: Duration::from_millis(100),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

#[tokio::test]
async fn execution_of_a_killed_worker_is_resumed_by_another() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(false);
    let src = client(&src_reg, false);
    push_image(&src, "big/app", "a-small", &[random(2_000)]).await;
    push_image(&src, "big/app", "b-large", &[random(600_000)]).await;
    let key = std::sync::Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let src_id = registry(&registries, "src", &src_reg.base, false).await;
    let dst_id = registry(&registries, "dst", &dst_reg.base, false).await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "slow".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            enabled: true,
            // 600 kB at 100 KiB/s: about six seconds mid-copy to kill it in.
            speed_kb: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut first = Jobs::start(db.pool.clone()).await.unwrap();
    first.set_timings(fast_timings());
    first.register(JOB_KIND, ReplicationJob::new(registries.clone()));
    let killed = first.run_worker(1, std::future::pending());
    let id = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
        let status = |r: &str| {
            tasks
                .iter()
                .find(|t| t.src_resource == r)
                .map(|t| t.status.clone())
        };
        if status("big/app:a-small").as_deref() == Some("Succeed")
            && status("big/app:b-large").as_deref() == Some("Running")
        {
            break;
        }
        assert!(Instant::now() < deadline, "never mid-copy: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    killed.abort();
    let _ = killed.await;

    let mut second = Jobs::start(db.pool.clone()).await.unwrap();
    second.set_timings(fast_timings());
    second.register(JOB_KIND, ReplicationJob::new(registries.clone()));
    let _other = second.run_worker(1, std::future::pending());
    let done = wait_final(&db.pool, id, Duration::from_secs(90)).await;
    let log = wharf_jobs::get_log(&db.pool, id)
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(done.status, ExecutionStatus::Success, "{log}");
    assert!(log.contains("resuming"), "{log}");
    let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
    let attempts = |r: &str| tasks.iter().find(|t| t.src_resource == r).unwrap().attempts;
    assert_eq!(
        attempts("big/app:a-small"),
        1,
        "a finished task is not copied again"
    );
    assert_eq!(
        attempts("big/app:b-large"),
        2,
        "the interrupted task is copied again"
    );
    let dst = client(&dst_reg, false);
    assert!(
        dst.head_manifest("big/app", "b-large")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn stop_request_ends_the_execution_between_tasks() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let dst_reg = start_distribution(false);
    let src = client(&src_reg, false);
    push_image(&src, "stop/app", "a", &[random(300_000)]).await;
    push_image(&src, "stop/app", "b", &[random(1_000)]).await;
    push_image(&src, "stop/app", "c", &[random(1_000)]).await;
    let key = std::sync::Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let src_id = registry(&registries, "src", &src_reg.base, false).await;
    let dst_id = registry(&registries, "dst", &dst_reg.base, false).await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "stoppable".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            enabled: true,
            speed_kb: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _jobs = worker(&db.pool, registries.clone()).await;
    let id = policies::start_execution(&db.pool, policy.id, Trigger::Manual)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !policies::list_tasks(&db.pool, id)
        .await
        .unwrap()
        .iter()
        .any(|t| t.status == "Running")
    {
        assert!(Instant::now() < deadline, "no task started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(wharf_jobs::request_stop(&db.pool, id).await.unwrap());
    let done = wait_final(&db.pool, id, Duration::from_secs(60)).await;
    assert_eq!(done.status, ExecutionStatus::Stopped);
    let tasks = policies::list_tasks(&db.pool, id).await.unwrap();
    let status: Vec<&str> = tasks.iter().map(|t| t.status.as_str()).collect();
    assert_eq!(status, ["Succeed", "Pending", "Pending"], "{tasks:?}");
    assert_eq!(
        client(&dst_reg, false).tags("stop/app").await.unwrap(),
        ["a"]
    );
}
