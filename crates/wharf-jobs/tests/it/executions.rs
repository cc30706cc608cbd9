//! Executions: stopping, listing, finishing.

use std::time::Duration;

use serde_json::json;
use wharf_jobs::{
    EnqueueOptions, ExecutionQuery, ExecutionStatus, Outcome, Trigger, create_execution, finish,
    get_execution, get_log, is_stop_requested, list_executions, request_stop, with_execution,
};

use crate::support::{TestDb, eventually};
use crate::{KIND, jobs_on, runs, shutdown_pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_pending_execution_means_its_job_does_nothing() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    let mut tx = db.pool.begin().await.unwrap();
    let params = json!({"tag": "never"});
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

    assert!(request_stop(&db.pool, id).await.unwrap());
    let e = get_execution(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Stopped);
    assert!(e.finished_at.is_some());
    // Stopping again changes nothing.
    assert!(!request_stop(&db.pool, id).await.unwrap());

    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(1, shutdown);
    eventually("the queue to drain", Duration::from_secs(15), || async {
        jobs.queue_depth().await.unwrap().is_empty().then_some(())
    })
    .await;
    assert!(runs(&db.pool, "never").await.is_empty());
    assert_eq!(
        get_execution(&db.pool, id).await.unwrap().unwrap().status,
        ExecutionStatus::Stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_running_execution_lets_the_handler_wind_down() {
    let db = TestDb::new().await;
    let jobs = jobs_on(&db.pool, "w1").await;
    let mut tx = db.pool.begin().await.unwrap();
    let params = json!({"tag": "long", "mode": "until_stopped"});
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
    eventually("the job to start", Duration::from_secs(15), || async {
        let e = get_execution(&db.pool, id).await.unwrap().unwrap();
        (e.status == ExecutionStatus::Running && !runs(&db.pool, "long").await.is_empty())
            .then_some(())
    })
    .await;
    assert!(!is_stop_requested(&db.pool, id).await.unwrap());
    assert!(request_stop(&db.pool, id).await.unwrap());
    assert_eq!(
        get_execution(&db.pool, id).await.unwrap().unwrap().status,
        ExecutionStatus::Stopping
    );
    assert!(is_stop_requested(&db.pool, id).await.unwrap());
    let e = eventually("the execution to stop", Duration::from_secs(15), || async {
        let e = get_execution(&db.pool, id).await.unwrap().unwrap();
        e.status.is_final().then_some(e)
    })
    .await;
    assert_eq!(e.status, ExecutionStatus::Stopped);
    let log = get_log(&db.pool, id).await.unwrap().unwrap();
    assert!(log.contains("stop noticed"), "{log}");
}

#[tokio::test]
async fn finish_merges_results_and_only_once() {
    let db = TestDb::new().await;
    let id = create_execution(
        &db.pool,
        "gc",
        Trigger::Manual,
        json!({"dry_run": true}),
        None,
    )
    .await
    .unwrap();
    assert!(
        finish(&db.pool, id, Outcome::Success, Some(json!({"deleted": 3})))
            .await
            .unwrap()
    );
    // A second finish (the dispatcher's, after a handler that finished) is a no-op.
    assert!(
        !finish(&db.pool, id, Outcome::Error, Some(json!({"error": "x"})))
            .await
            .unwrap()
    );
    let e = get_execution(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(e.status, ExecutionStatus::Success);
    assert_eq!(e.result, Some(json!({"deleted": 3})));
    assert_eq!(e.parameters, json!({"dry_run": true}));

    let id = create_execution(&db.pool, "gc", Trigger::Manual, json!({}), None)
        .await
        .unwrap();
    wharf_jobs::start(&db.pool, id).await.unwrap();
    // A handler's partial result survives the error being added.
    sqlx::query("UPDATE job_executions SET result = '{\"deleted\": 1}' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    finish(
        &db.pool,
        id,
        Outcome::Error,
        Some(json!({"error": "disk full"})),
    )
    .await
    .unwrap();
    let e = get_execution(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(e.result, Some(json!({"deleted": 1, "error": "disk full"})));
    assert!(matches!(
        request_stop(&db.pool, 999_999).await,
        Err(wharf_jobs::JobsError::ExecutionNotFound(999_999))
    ));
}

#[tokio::test]
async fn listing_pages_newest_first_with_a_total_and_a_project_filter() {
    let db = TestDb::new().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let project = if i % 2 == 0 { Some(5) } else { None };
        ids.push(
            create_execution(
                &db.pool,
                "retention",
                Trigger::Schedule,
                json!({"i": i}),
                project,
            )
            .await
            .unwrap(),
        );
    }
    create_execution(&db.pool, "gc", Trigger::Manual, json!({}), None)
        .await
        .unwrap();

    let mut q = ExecutionQuery::new("retention");
    q.page_size = 3;
    let (page, total) = list_executions(&db.pool, &q).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5], ids[4]]
    );
    assert!(
        page.iter()
            .all(|e| e.trigger == Trigger::Schedule && e.kind == "retention")
    );
    q.page = 3;
    let (page, total) = list_executions(&db.pool, &q).await.unwrap();
    assert_eq!((page.len(), total), (1, 7));
    // Past the end: empty, the total still known.
    q.page = 9;
    let (page, total) = list_executions(&db.pool, &q).await.unwrap();
    assert_eq!((page.len(), total), (0, 7));

    let mut q = ExecutionQuery::new("retention");
    q.project_id = Some(5);
    q.page_size = 100;
    let (page, total) = list_executions(&db.pool, &q).await.unwrap();
    assert_eq!(total, 4);
    assert!(page.iter().all(|e| e.project_id == Some(5)));
}
