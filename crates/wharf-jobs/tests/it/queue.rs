//! The queue: transactional enqueue, retries, several workers, dead workers.

use std::time::{Duration, Instant};

use serde_json::json;
use wharf_jobs::{
    EnqueueOptions, ExecutionStatus, Trigger, create_execution, get_execution, get_log,
    with_execution,
};

use crate::support::{TestDb, eventually};
use crate::{KIND, jobs_on, runs, shutdown_pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_enqueue_never_runs_and_a_committed_one_runs_once() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;

    let mut tx = db.pool.begin().await.unwrap();
    jobs.enqueue(
        &mut tx,
        KIND,
        json!({"tag": "rolled-back"}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    jobs.enqueue(
        &mut tx,
        KIND,
        json!({"tag": "committed"}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    // Not visible to the queue before commit.
    assert_eq!(jobs.queue_depth().await.unwrap(), vec![]);
    tx.commit().await.unwrap();
    assert_eq!(
        jobs.queue_depth().await.unwrap(),
        vec![(KIND.to_owned(), 1)]
    );

    let (stop, shutdown) = shutdown_pair();
    let worker = jobs.run_worker(2, shutdown);
    eventually(
        "the committed job to run",
        Duration::from_secs(15),
        || async { (!runs(&db.pool, "committed").await.is_empty()).then_some(()) },
    )
    .await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs(&db.pool, "committed").await,
        vec![("w1".to_owned(), 1)]
    );
    assert!(runs(&db.pool, "rolled-back").await.is_empty());
    eventually("the queue to drain", Duration::from_secs(5), || async {
        jobs.queue_depth().await.unwrap().is_empty().then_some(())
    })
    .await;

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("worker stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_with_backoff_then_mark_the_execution_error() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;

    let mut tx = db.pool.begin().await.unwrap();
    let params = json!({"tag": "flaky", "mode": "retry"});
    let id = create_execution(&mut *tx, KIND, Trigger::Manual, params.clone(), None)
        .await
        .unwrap();
    let options = EnqueueOptions {
        max_attempts: Some(3),
        ..Default::default()
    };
    jobs.enqueue(&mut tx, KIND, with_execution(params, id), options)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        get_execution(&db.pool, id).await.unwrap().unwrap().status,
        ExecutionStatus::Pending
    );

    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    let execution = eventually(
        "the execution to give up",
        Duration::from_secs(40),
        || async {
            let e = get_execution(&db.pool, id).await.unwrap().unwrap();
            e.status.is_final().then_some(e)
        },
    )
    .await;
    assert_eq!(execution.status, ExecutionStatus::Error);
    assert_eq!(
        execution.result,
        Some(json!({"error": "storage unreachable (flaky)"}))
    );
    assert!(execution.started_at.is_some() && execution.finished_at.is_some());

    // Three attempts, spaced by graphile_worker's backoff: e^1 s, then e^2 s.
    let times: Vec<(i32, f64)> = sqlx::query_as(
        "SELECT attempt, extract(epoch FROM at)::float8 FROM test_runs WHERE tag = 'flaky' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    let first_gap = times[1].1 - times[0].1;
    let second_gap = times[2].1 - times[1].1;
    assert!(
        first_gap >= 2.5,
        "first retry after {first_gap:.2} s, expected ≥ e s"
    );
    assert!(
        second_gap >= 7.0,
        "second retry after {second_gap:.2} s, expected ≥ e² s"
    );
    assert!(second_gap > first_gap);

    let log = get_log(&db.pool, id).await.unwrap().unwrap();
    assert!(
        log.contains("attempt 1 of 3 failed: storage unreachable (flaky); will retry"),
        "{log}"
    );
    assert!(
        log.contains("attempt 3 of 3 failed: storage unreachable (flaky); giving up"),
        "{log}"
    );
    // Every line is timestamped.
    for line in log.lines() {
        assert!(
            line.len() > 21 && line.as_bytes()[4] == b'-' && line[19..].starts_with("Z [INFO] "),
            "untimestamped log line {line:?}"
        );
    }
    // The given-up job is not counted as waiting.
    assert_eq!(jobs.queue_depth().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_failure_is_not_retried() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    let mut tx = db.pool.begin().await.unwrap();
    let params = json!({"tag": "doomed", "mode": "fatal"});
    let id = create_execution(&mut *tx, KIND, Trigger::Manual, params.clone(), None)
        .await
        .unwrap();
    jobs.enqueue(
        &mut tx,
        KIND,
        with_execution(params, id),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    let execution = eventually("the execution to fail", Duration::from_secs(15), || async {
        let e = get_execution(&db.pool, id).await.unwrap().unwrap();
        e.status.is_final().then_some(e)
    })
    .await;
    assert_eq!(execution.status, ExecutionStatus::Error);
    assert_eq!(
        execution.result,
        Some(json!({"error": "bad payload (doomed)"}))
    );
    // A retry would come after e ≈ 2.7 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs(&db.pool, "doomed").await, vec![("w1".to_owned(), 1)]);
    assert_eq!(jobs.queue_depth().await.unwrap(), vec![]);
    let log = get_log(&db.pool, id).await.unwrap().unwrap();
    assert!(log.contains("failed: bad payload (doomed)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_job_systems_on_one_database_never_run_a_job_twice() {
    let db = TestDb::new().await;
    let pool_a = db.replica_pool().await;
    let pool_b = db.replica_pool().await;
    let a = jobs_on(&pool_a, "a").await;
    let b = jobs_on(&pool_b, "b").await;

    const N: usize = 80;
    let mut tx = db.pool.begin().await.unwrap();
    for i in 0..N {
        a.enqueue(
            &mut tx,
            KIND,
            json!({"tag": format!("job-{i}"), "mode": "sleep", "ms": 30}),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let (_stop_a, shutdown_a) = shutdown_pair();
    let (_stop_b, shutdown_b) = shutdown_pair();
    let _wa = a.run_worker(4, shutdown_a);
    let _wb = b.run_worker(4, shutdown_b);

    eventually("every job to run", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(DISTINCT tag) FROM test_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n as usize == N).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT tag) FROM test_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((total, distinct), (N as i64, N as i64), "a job ran twice");
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM test_runs GROUP BY worker ORDER BY worker")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    // Both shared the work (each took at least one job).
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_dies_is_retried_by_another() {
    let db = TestDb::new().await;
    let pool_a = db.replica_pool().await;
    let pool_b = db.replica_pool().await;
    let a = jobs_on(&pool_a, "a").await;
    let b = jobs_on(&pool_b, "b").await;

    let mut tx = db.pool.begin().await.unwrap();
    let params = json!({"tag": "orphan", "mode": "hang_on", "worker": "a"});
    let id = create_execution(&mut *tx, KIND, Trigger::Manual, params.clone(), None)
        .await
        .unwrap();
    a.enqueue(
        &mut tx,
        KIND,
        with_execution(params, id),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let (_stop_a, shutdown_a) = shutdown_pair();
    let worker_a = a.run_worker(1, shutdown_a);
    eventually(
        "worker a to start the job",
        Duration::from_secs(15),
        || async { (!runs(&db.pool, "orphan").await.is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(
        get_execution(&db.pool, id).await.unwrap().unwrap().status,
        ExecutionStatus::Running
    );

    // Worker a dies mid-job; then b comes up.
    worker_a.abort();
    let _ = worker_a.await;
    let died = Instant::now();
    let (_stop_b, shutdown_b) = shutdown_pair();
    let _worker_b = b.run_worker(1, shutdown_b);

    let execution = eventually(
        "worker b to finish the job",
        Duration::from_secs(30),
        || async {
            let e = get_execution(&db.pool, id).await.unwrap().unwrap();
            e.status.is_final().then_some(e)
        },
    )
    .await;
    assert_eq!(execution.status, ExecutionStatus::Success);
    // Released only once a's heartbeat was stale (threshold 1 s).
    assert!(died.elapsed() >= Duration::from_millis(900));
    // The same attempt number (dying is no failure of the job), but b is
    // told it resumes a Running execution.
    let seen: Vec<(String, i32, bool)> = sqlx::query_as(
        "SELECT worker, attempt, resumed FROM test_runs WHERE tag = 'orphan' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec![("a".to_owned(), 1, false), ("b".to_owned(), 1, true)]
    );
    let log = get_log(&db.pool, id).await.unwrap().unwrap();
    assert!(log.contains("test resumed (attempt 1 of 25)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_key_keeps_one_waiting_job() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    for tag in ["first", "second"] {
        let mut tx = db.pool.begin().await.unwrap();
        let options = EnqueueOptions {
            job_key: Some("the-only-one".into()),
            ..Default::default()
        };
        jobs.enqueue(&mut tx, KIND, json!({"tag": tag}), options)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(
        jobs.queue_depth().await.unwrap(),
        vec![(KIND.to_owned(), 1)]
    );
    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    eventually("the keyed job to run", Duration::from_secs(15), || async {
        (!runs(&db.pool, "second").await.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(runs(&db.pool, "first").await.is_empty(), "replaced job ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_delays_a_job() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    let mut tx = db.pool.begin().await.unwrap();
    let options = EnqueueOptions {
        run_at: Some(chrono::Utc::now() + chrono::Duration::seconds(2)),
        ..Default::default()
    };
    let enqueued = Instant::now();
    jobs.enqueue(&mut tx, KIND, json!({"tag": "later"}), options)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    eventually(
        "the delayed job to run",
        Duration::from_secs(15),
        || async { (!runs(&db.pool, "later").await.is_empty()).then_some(()) },
    )
    .await;
    assert!(enqueued.elapsed() >= Duration::from_millis(1800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_waits_for_a_worker_that_knows_it() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    let mut tx = db.pool.begin().await.unwrap();
    jobs.enqueue(
        &mut tx,
        "not-registered",
        json!({}),
        EnqueueOptions::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    let last_error: String = eventually("the first attempt", Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM graphile_worker._private_jobs",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .flatten()
    })
    .await;
    assert!(
        last_error.contains("no handler registered for job kind")
            && last_error.contains("not-registered"),
        "{last_error}"
    );
    // Still queued for a worker that knows the kind.
    assert_eq!(
        jobs.queue_depth().await.unwrap(),
        vec![("not-registered".to_owned(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_on_many_replicas_at_once_installs_the_queue_once() {
    let db = TestDb::new().await;
    let mut starts = Vec::new();
    // One of them on a single-connection pool: the install lock must not
    // take the only connection the migration needs.
    let tiny = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&db.url)
        .await
        .unwrap();
    starts.push(tokio::spawn(
        async move { wharf_jobs::Jobs::start(tiny).await },
    ));
    for _ in 0..4 {
        let pool = db.replica_pool().await;
        starts.push(tokio::spawn(
            async move { wharf_jobs::Jobs::start(pool).await },
        ));
    }
    for s in starts {
        s.await.unwrap().expect("concurrent start succeeds");
    }
    let migrations: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT id) FROM graphile_worker.migrations")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(migrations > 0);
}
