//! The job observer: what metrics hear about each attempt a worker runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use wharf_jobs::{AttemptOutcome, EnqueueOptions, JobObserver};

use crate::support::{TestDb, eventually};
use crate::{KIND, jobs_on, runs, shutdown_pair};

/// Every report, in order.
#[derive(Default)]
struct Heard(Mutex<Vec<(&'static str, AttemptOutcome)>>);

impl JobObserver for Heard {
    fn attempt_finished(&self, kind: &'static str, outcome: AttemptOutcome) {
        self.0.lock().unwrap().push((kind, outcome));
    }
}

impl Heard {
    fn count(&self, outcome: AttemptOutcome) -> usize {
        let heard = self.0.lock().unwrap();
        heard.iter().filter(|(_, o)| *o == outcome).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_hears_each_attempts_outcome_once() {
    let db = TestDb::new().await;
    let mut jobs = jobs_on(&db.pool, "w1").await;
    let heard = Arc::new(Heard::default());
    jobs.set_observer(heard.clone());

    let mut tx = db.pool.begin().await.unwrap();
    for (tag, mode) in [("fine", "ok"), ("doomed", "fatal"), ("flaky", "retry")] {
        let options = EnqueueOptions {
            max_attempts: Some(2),
            ..Default::default()
        };
        jobs.enqueue(&mut tx, KIND, json!({"tag": tag, "mode": mode}), options)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let (_stop, shutdown) = shutdown_pair();
    let _worker = jobs.run_worker(2, shutdown);
    // The flaky job's second attempt comes after e ≈ 2.7 s of backoff.
    eventually("four attempts to end", Duration::from_secs(20), || async {
        (heard.0.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    // Nothing more arrives: the flaky job gave up after its two attempts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs(&db.pool, "flaky").await.len(), 2);
    assert_eq!(heard.0.lock().unwrap().len(), 4);
    assert!(
        heard
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|(kind, _)| *kind == KIND)
    );
    assert_eq!(heard.count(AttemptOutcome::Succeeded), 1);
    assert_eq!(
        heard.count(AttemptOutcome::Retrying),
        1,
        "flaky's first attempt"
    );
    assert_eq!(
        heard.count(AttemptOutcome::Failed),
        2,
        "doomed, and flaky's last"
    );
}
