//! Schedules: Harbor's types, cron validation, and the scheduler on several
//! instances.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use wharf_jobs::{
    JobsError, ScheduleType, cron_for, delete_schedule, get_schedule, next_tick, schedule_type_of,
    set_schedule, validate_cron,
};

use crate::support::{TestDb, eventually};
use crate::{KIND, jobs_on, runs, shutdown_pair};

#[test]
fn harbor_schedule_types_map_to_their_crons() {
    assert_eq!(
        cron_for(ScheduleType::Hourly, None).unwrap().as_deref(),
        Some("0 0 * * * *")
    );
    assert_eq!(
        cron_for(ScheduleType::Daily, None).unwrap().as_deref(),
        Some("0 0 0 * * *")
    );
    assert_eq!(
        cron_for(ScheduleType::Weekly, None).unwrap().as_deref(),
        Some("0 0 0 * * 0")
    );
    assert_eq!(
        cron_for(ScheduleType::Custom, Some(" 0  30 2 * * 1-5 "))
            .unwrap()
            .as_deref(),
        Some("0 30 2 * * 1-5")
    );
    assert_eq!(
        cron_for(ScheduleType::None, Some("0 0 * * * *")).unwrap(),
        None
    );
    assert_eq!(cron_for(ScheduleType::Manual, None).unwrap(), None);
    assert!(matches!(
        cron_for(ScheduleType::Custom, None),
        Err(JobsError::InvalidSchedule(_))
    ));
    assert!(matches!(
        cron_for(ScheduleType::Custom, Some("0 0 * * *")),
        Err(JobsError::InvalidCron { .. })
    ));

    assert_eq!(schedule_type_of("0 0 * * * *"), ScheduleType::Hourly);
    assert_eq!(schedule_type_of("0 0 0 * * *"), ScheduleType::Daily);
    assert_eq!(schedule_type_of("0 0 0 * * 0"), ScheduleType::Weekly);
    assert_eq!(schedule_type_of("0 5 0 * * 0"), ScheduleType::Custom);
    for t in ["None", "Hourly", "Daily", "Weekly", "Custom", "Manual"] {
        assert_eq!(ScheduleType::parse(t).unwrap().as_str(), t);
    }
    assert_eq!(ScheduleType::parse("").unwrap(), ScheduleType::None);
    assert!(ScheduleType::parse("Monthly").is_err());
}

#[test]
fn crons_have_six_fields_and_sunday_is_zero() {
    // Wednesday 2026-12-02 10:20:30 UTC.
    let wed = Utc.with_ymd_and_hms(2026, 12, 2, 10, 20, 30).unwrap();
    assert_eq!(
        next_tick("0 0 0 * * 0", wed).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap(),
        "Weekly fires at midnight starting Sunday"
    );
    assert_eq!(
        next_tick("0 0 * * * *", wed).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 2, 11, 0, 0).unwrap()
    );
    assert_eq!(
        next_tick("15 * * * * *", wed).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 21, 15).unwrap(),
        "the first field is seconds"
    );
    // Strictly after: a tick at exactly `after` is not returned.
    let on_tick = Utc.with_ymd_and_hms(2026, 12, 2, 11, 0, 0).unwrap();
    assert_eq!(
        next_tick("0 0 * * * *", on_tick).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
    );
}

#[test]
fn invalid_crons_are_rejected_with_a_clear_error() {
    let five = validate_cron("0 0 * * *").unwrap_err().to_string();
    assert!(five.contains("expected 6 fields"), "{five}");
    assert!(five.contains("got 5"), "{five}");
    let seven = validate_cron("0 0 0 * * * 2027").unwrap_err().to_string();
    assert!(seven.contains("got 7"), "{seven}");
    let range = validate_cron("61 * * * * *").unwrap_err().to_string();
    assert!(
        range.starts_with("invalid cron expression \"61 * * * * *\""),
        "{range}"
    );
    let junk = validate_cron("a b c d e f").unwrap_err();
    assert!(matches!(junk, JobsError::InvalidCron { .. }));
    let never = validate_cron("0 0 0 30 2 *").unwrap_err().to_string();
    assert!(never.contains("never fires"), "{never}");
    assert!(validate_cron("*/10 * * * * *").is_ok());
}

#[tokio::test]
async fn set_get_replace_and_delete_a_schedule() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let err = set_schedule(&mut conn, "gc", "gc", "0 0 * * *", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected 6 fields"), "{err}");
    assert!(get_schedule(&db.pool, "gc").await.unwrap().is_none());

    let s = set_schedule(
        &mut conn,
        "gc",
        "gc",
        "0 0 0 * * *",
        json!({"dry_run": false}),
    )
    .await
    .unwrap();
    assert_eq!(s.schedule_type(), ScheduleType::Daily);
    assert!(s.next_run_at > Utc::now());
    assert_eq!(s.next_run_at.timestamp() % 86_400, 0, "midnight UTC");
    // Same cron, new payload: the pending tick is kept.
    let again = set_schedule(
        &mut conn,
        "gc",
        "gc",
        "0 0 0 * * *",
        json!({"dry_run": true}),
    )
    .await
    .unwrap();
    assert_eq!(again.next_run_at, s.next_run_at);
    assert_eq!(again.payload, json!({"dry_run": true}));
    assert_eq!(again.created_at, s.created_at);
    // New cron: the next tick follows it.
    let hourly = set_schedule(&mut conn, "gc", "gc", "0 0 * * * *", json!({}))
        .await
        .unwrap();
    assert_eq!(hourly.next_run_at.timestamp() % 3600, 0);
    assert!(hourly.next_run_at <= s.next_run_at);
    assert_eq!(get_schedule(&db.pool, "gc").await.unwrap().unwrap(), hourly);

    assert!(delete_schedule(&db.pool, "gc").await.unwrap());
    assert!(!delete_schedule(&db.pool, "gc").await.unwrap());
    assert!(get_schedule(&db.pool, "gc").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_fire_each_tick_exactly_once() {
    let db = TestDb::new().await;
    let first = jobs_on(&db.pool, "w1").await;
    let mut conn = db.pool.acquire().await.unwrap();
    set_schedule(
        &mut conn,
        "every-second",
        KIND,
        "* * * * * *",
        json!({"tag": "tick"}),
    )
    .await
    .unwrap();
    drop(conn);

    let mut stops = Vec::new();
    let mut loops = Vec::new();
    for _ in 0..3 {
        let pool = db.replica_pool().await;
        let jobs = wharf_jobs::Jobs::start(pool).await.unwrap();
        let (stop, shutdown) = shutdown_pair();
        stops.push(stop);
        loops.push(jobs.run_scheduler(shutdown));
    }
    let (_stop_worker, shutdown) = shutdown_pair();
    let _worker = first.run_worker(2, shutdown);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    for stop in stops {
        stop.send(()).unwrap();
    }
    for l in loops {
        tokio::time::timeout(Duration::from_secs(5), l)
            .await
            .expect("scheduler stops")
            .unwrap();
    }

    let times: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM created_at)::float8 FROM job_executions \
         WHERE kind = $1 AND \"trigger\" = 'Schedule' ORDER BY created_at",
    )
    .bind(KIND)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        (3..=6).contains(&times.len()),
        "{} executions in 4.5 s of a 1-second schedule",
        times.len()
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > 0.5,
            "two executions {gap:.3} s apart: a tick fired twice"
        );
    }
    // One tick, one job: every execution's job ran once.
    let n = times.len();
    eventually(
        "every tick's job to run",
        Duration::from_secs(15),
        || async { (runs(&db.pool, "tick").await.len() == n).then_some(()) },
    )
    .await;
    let per_execution: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT execution_id FROM test_runs WHERE tag = 'tick' \
         GROUP BY execution_id HAVING count(*) > 1) dup",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(per_execution, 0);
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM job_executions WHERE kind = $1")
            .bind(KIND)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(statuses, vec!["Success".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_everything_was_down_fire_once() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    set_schedule(
        &mut conn,
        "nightly",
        "gc",
        "0 * * * * *",
        json!({"project_id": 42}),
    )
    .await
    .unwrap();
    // Every replica was down for ten minutes: ten ticks missed.
    sqlx::query("UPDATE job_schedules SET next_run_at = now() - interval '10 minutes'")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(
            wharf_jobs::Jobs::start(db.replica_pool().await)
                .await
                .unwrap(),
        );
    }
    let fired = futures_fire_all(&instances).await;
    assert_eq!(fired, 1, "the missed ticks fire once in all");
    let (count, project): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), max(project_id) FROM job_executions WHERE kind = 'gc'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((count, project), (1, Some(42)));
    let s = get_schedule(&db.pool, "nightly").await.unwrap().unwrap();
    assert!(s.next_run_at > Utc::now(), "the next tick is in the future");
    assert_eq!(s.next_run_at.timestamp() % 60, 0);
    assert_eq!(
        instances[0].queue_depth().await.unwrap(),
        vec![("gc".to_owned(), 1)]
    );
    // Nothing more is due.
    assert_eq!(futures_fire_all(&instances).await, 0);
}

async fn futures_fire_all(instances: &[wharf_jobs::Jobs]) -> usize {
    let handles: Vec<_> = instances
        .iter()
        .cloned()
        .map(|j| tokio::spawn(async move { j.fire_due_schedules().await.unwrap() }))
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total
}
