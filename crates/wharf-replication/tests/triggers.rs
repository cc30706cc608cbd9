//! Policies whose source is this Wharf (a docker-registry stands in for its
//! `/v2`, its labels are rows of Wharf's tables): label and resource
//! filters, update_policy keeping the cron schedule in step, and
//! event-triggered executions copying (or deleting) just their resource.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use wharf_jobs::{ExecutionStatus, Jobs};
use wharf_replication::crypto::SecretKey;
use wharf_replication::events::{Change, on_registry_change};
use wharf_replication::policies::{self, JOB_KIND, PolicySpec, PolicyTrigger, ReplicationJob};
use wharf_replication::registries::{LocalRegistry, Registries, RegistryKind, RegistrySpec};
use wharf_replication::{Endpoint, RegistryClient, ReplicationError};

mod support;
use support::*;

/// "This Wharf" for the tests: a docker-registry.
struct Local(String);

impl LocalRegistry for Local {
    fn client(&self) -> Result<RegistryClient, ReplicationError> {
        RegistryClient::new(Endpoint::new(&self.0)?)
    }
}

async fn setup(db: &TestDb, local: &Distribution) -> Registries {
    let key = Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    Registries::new(db.pool.clone(), key).with_local(Arc::new(Local(local.base.clone())))
}

async fn remote(registries: &Registries, name: &str, base: &str) -> i64 {
    registries
        .create(&RegistrySpec {
            name: name.into(),
            kind: RegistryKind::DockerRegistry,
            url: base.into(),
            description: String::new(),
            access_key: Some(USER.into()),
            access_secret: Some(PASSWORD.into()),
            insecure: false,
        })
        .await
        .unwrap()
        .id
}

async fn worker(pool: &PgPool, registries: Registries) -> Jobs {
    let mut jobs = Jobs::start(pool.clone()).await.unwrap();
    jobs.register(JOB_KIND, ReplicationJob::new(registries));
    drop(jobs.run_worker(2, std::future::pending()));
    jobs
}

async fn wait_final(pool: &PgPool, id: i64) -> wharf_jobs::Execution {
    let deadline = Instant::now() + Duration::from_secs(60);
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

async fn planned(pool: &PgPool, id: i64) -> Vec<(String, String)> {
    let mut tasks: Vec<(String, String)> = policies::list_tasks(pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.src_resource, t.status))
        .collect();
    tasks.sort();
    tasks
}

/// Record `repo:tag` in Wharf's tables with `labels`, as the registry and
/// the label API would have.
async fn label(pool: &PgPool, repo: &str, tag: &str, labels: &[&str]) {
    let repo_id: i64 = sqlx::query_scalar(
        "INSERT INTO repositories (name, project) VALUES ($1, split_part($1, '/', 1)) \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(repo)
    .fetch_one(pool)
    .await
    .unwrap();
    let digest = format!("sha256:{:0>64}", format!("{:x}", rand::random::<u64>()));
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, 2)")
        .bind(&digest)
        .execute(pool)
        .await
        .unwrap();
    let manifest: i64 = sqlx::query_scalar(
        "INSERT INTO manifests (repository_id, digest, media_type, size, content) \
         VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 2, '{}') RETURNING id",
    )
    .bind(repo_id)
    .bind(&digest)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, $2, $3)")
        .bind(repo_id)
        .bind(tag)
        .bind(manifest)
        .execute(pool)
        .await
        .unwrap();
    for name in labels {
        let id: i64 = sqlx::query_scalar(
            "WITH found AS (SELECT id FROM labels WHERE name = $1 AND scope = 'g'), \
             made AS (INSERT INTO labels (name, scope) SELECT $1, 'g' \
                      WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id) \
             SELECT id FROM found UNION ALL SELECT id FROM made",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO artifact_labels (manifest_id, label_id) VALUES ($1, $2)")
            .bind(manifest)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn label_and_resource_filters_of_a_push_policy() {
    let db = TestDb::new().await;
    let local = start_distribution(false);
    let dst = start_distribution(true);
    let registries = setup(&db, &local).await;
    let src = client(&local, false);
    push_image(&src, "library/app", "v1", &[random(500)]).await;
    push_image(&src, "library/app", "v2", &[random(500)]).await;
    push_image(&src, "library/app", "v3", &[random(500)]).await;
    // A Helm chart: an artifact, not an image.
    let chart = push_blob(&src, "library/app", &random(300)).await;
    let mut cfg = push_blob(&src, "library/app", &bytes::Bytes::from_static(b"{}")).await;
    cfg["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    put(
        &src,
        "library/app",
        "chart",
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": [chart]}),
    )
    .await;
    label(&db.pool, "library/app", "v1", &["prod"]).await;
    label(&db.pool, "library/app", "v2", &["prod", "deprecated"]).await;
    label(&db.pool, "library/app", "v3", &[]).await;
    label(&db.pool, "library/app", "chart", &["prod"]).await;

    let dst_id = remote(&registries, "dr", &dst.base).await;
    let base = PolicySpec {
        src_registry_id: None,
        dest_registry_id: Some(dst_id),
        override_tags: true,
        enabled: true,
        ..Default::default()
    };
    let labelled = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "prod-only".into(),
            label_include: vec!["prod".into()],
            label_exclude: vec!["deprecated".into()],
            ..base.clone()
        },
    )
    .await
    .unwrap();
    let images = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "images".into(),
            resource_filter: Some("image".into()),
            dest_namespace: Some("img".into()),
            ..base.clone()
        },
    )
    .await
    .unwrap();
    // Labels are this Wharf's: a remote source cannot be filtered by them.
    let refused = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "pull-labelled".into(),
            src_registry_id: Some(dst_id),
            dest_registry_id: None,
            label_include: vec!["prod".into()],
            ..base.clone()
        },
    )
    .await;
    assert!(matches!(refused, Err(ReplicationError::Invalid(_))));

    let _jobs = worker(&db.pool, registries).await;
    let a = policies::start_execution(&db.pool, labelled.id, wharf_jobs::Trigger::Manual)
        .await
        .unwrap();
    let b = policies::start_execution(&db.pool, images.id, wharf_jobs::Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(
        wait_final(&db.pool, a).await.status,
        ExecutionStatus::Success
    );
    assert_eq!(
        wait_final(&db.pool, b).await.status,
        ExecutionStatus::Success
    );
    let ok = |r: &str| (r.to_owned(), "Succeed".to_owned());
    assert_eq!(
        planned(&db.pool, a).await,
        [ok("library/app:chart"), ok("library/app:v1")]
    );
    assert_eq!(
        planned(&db.pool, b).await,
        [
            ok("library/app:v1"),
            ok("library/app:v2"),
            ok("library/app:v3")
        ]
    );
    let types: Vec<String> = policies::list_tasks(&db.pool, b)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.resource_type)
        .collect();
    assert!(types.iter().all(|t| t == "image"), "{types:?}");
    let d = client(&dst, true);
    assert!(
        d.head_manifest("library/app", "v1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        d.head_manifest("library/app", "v2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        d.head_manifest("img/library/app", "v3")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        d.head_manifest("img/library/app", "chart")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn update_keeps_the_cron_schedule_in_step() {
    let db = TestDb::new().await;
    let dst = start_distribution(false);
    let key = Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let dst_id = remote(&registries, "dr", &dst.base).await;
    let schedule = |id| {
        let pool = db.pool.clone();
        async move {
            wharf_jobs::get_schedule(&pool, &policies::schedule_name(id))
                .await
                .unwrap()
                .map(|s| s.cron)
        }
    };
    let mut spec = PolicySpec {
        name: "nightly".into(),
        dest_registry_id: Some(dst_id),
        trigger: PolicyTrigger::Scheduled("0 0 2 * * *".into()),
        enabled: true,
        ..Default::default()
    };
    let policy = policies::create_policy(&db.pool, &spec).await.unwrap();
    assert_eq!(policy.trigger, spec.trigger);
    assert_eq!(schedule(policy.id).await.as_deref(), Some("0 0 2 * * *"));

    spec.trigger = PolicyTrigger::Scheduled("0 30 3 * * *".into());
    spec.name_filter = Some("library/**".into());
    let updated = policies::update_policy(&db.pool, policy.id, &spec)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name_filter.as_deref(), Some("library/**"));
    assert!(updated.updated_at >= policy.updated_at);
    assert_eq!(schedule(policy.id).await.as_deref(), Some("0 30 3 * * *"));

    // Disabled: no ticks. Enabled again: back.
    spec.enabled = false;
    policies::update_policy(&db.pool, policy.id, &spec)
        .await
        .unwrap();
    assert_eq!(schedule(policy.id).await, None);
    spec.enabled = true;
    policies::update_policy(&db.pool, policy.id, &spec)
        .await
        .unwrap();
    assert!(schedule(policy.id).await.is_some());

    // A bad cron changes nothing.
    let mut bad = spec.clone();
    bad.trigger = PolicyTrigger::Scheduled("every night".into());
    assert!(
        policies::update_policy(&db.pool, policy.id, &bad)
            .await
            .is_err()
    );
    assert_eq!(schedule(policy.id).await.as_deref(), Some("0 30 3 * * *"));

    spec.trigger = PolicyTrigger::EventBased;
    let event = policies::update_policy(&db.pool, policy.id, &spec)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.trigger, PolicyTrigger::EventBased);
    assert_eq!(schedule(policy.id).await, None);

    spec.trigger = PolicyTrigger::Scheduled("0 0 * * * *".into());
    policies::update_policy(&db.pool, policy.id, &spec)
        .await
        .unwrap();
    assert!(policies::delete_policy(&db.pool, policy.id).await.unwrap());
    assert_eq!(schedule(policy.id).await, None);
    assert!(
        policies::update_policy(&db.pool, policy.id, &spec)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn events_replicate_just_their_resource() {
    let db = TestDb::new().await;
    let local = start_distribution(false);
    let dst = start_distribution(true);
    let registries = setup(&db, &local).await;
    let src = client(&local, false);
    push_image(&src, "library/app", "v1", &[random(500)]).await;
    push_image(&src, "library/app", "v2", &[random(500)]).await;
    push_image(&src, "library/app", "latest", &[random(500)]).await;
    let dst_id = remote(&registries, "dr", &dst.base).await;
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "on-push".into(),
            dest_registry_id: Some(dst_id),
            dest_namespace: Some("mirror".into()),
            dest_namespace_replace_count: 1,
            tag_filter: Some("v*".into()),
            trigger: PolicyTrigger::EventBased,
            replicate_deletion: true,
            override_tags: true,
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _jobs = worker(&db.pool, registries).await;
    let change = |c: Change<'static>| {
        let pool = db.pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            let ids = on_registry_change(&mut tx, c).await.unwrap();
            tx.commit().await.unwrap();
            ids
        }
    };

    // The tag filter leaves `latest` out.
    assert!(
        change(Change::Pushed {
            repository: "library/app",
            tag: "latest"
        })
        .await
        .is_empty()
    );
    let ids = change(Change::Pushed {
        repository: "library/app",
        tag: "v2",
    })
    .await;
    assert_eq!(ids.len(), 1);
    let done = wait_final(&db.pool, ids[0]).await;
    assert_eq!(done.status, ExecutionStatus::Success, "{:?}", done.result);
    assert_eq!(done.trigger, wharf_jobs::Trigger::Event);
    assert_eq!(done.parameters["policy_id"], policy.id);
    assert_eq!(
        planned(&db.pool, ids[0]).await,
        [("library/app:v2".to_owned(), "Succeed".to_owned())]
    );
    let d = client(&dst, true);
    assert!(d.head_manifest("mirror/app", "v2").await.unwrap().is_some());
    assert!(d.head_manifest("mirror/app", "v1").await.unwrap().is_none());

    // The tag's deletion is replicated.
    let ids = change(Change::TagDeleted {
        repository: "library/app",
        tag: "v2",
    })
    .await;
    let done = wait_final(&db.pool, ids[0]).await;
    assert_eq!(done.status, ExecutionStatus::Success, "{:?}", done.result);
    let tasks = policies::list_tasks(&db.pool, ids[0]).await.unwrap();
    assert_eq!(tasks[0].operation, "deletion");
    assert_eq!(tasks[0].dst_resource, "mirror/app:v2");
    assert!(d.head_manifest("mirror/app", "v2").await.unwrap().is_none());
    // A digest cannot pass a tag filter.
    assert!(
        change(Change::ManifestDeleted {
            repository: "library/app",
            digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        })
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn a_running_execution_stops_between_tasks() {
    let db = TestDb::new().await;
    let src_reg = start_distribution(false);
    let dst = start_distribution(true);
    let key = Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
    let registries = Registries::new(db.pool.clone(), key);
    let src = client(&src_reg, false);
    for tag in ["a", "b", "c", "d"] {
        push_image(&src, "team/slow", tag, &[random(150_000)]).await;
    }
    let src_id = registries
        .create(&RegistrySpec {
            name: "src".into(),
            kind: RegistryKind::DockerRegistry,
            url: src_reg.base.clone(),
            description: String::new(),
            access_key: None,
            access_secret: None,
            insecure: false,
        })
        .await
        .unwrap()
        .id;
    let dst_id = remote(&registries, "dr", &dst.base).await;
    // About 1.5 s a task.
    let policy = policies::create_policy(
        &db.pool,
        &PolicySpec {
            name: "slow".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            speed_kb: Some(100),
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _jobs = worker(&db.pool, registries).await;
    let id = policies::start_execution(&db.pool, policy.id, wharf_jobs::Trigger::Manual)
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
    assert_eq!(
        policies::stop_execution(&db.pool, id).await.unwrap(),
        Some(true)
    );
    let done = wait_final(&db.pool, id).await;
    assert_eq!(done.status, ExecutionStatus::Stopped);
    let summary = policies::get_execution(&db.pool, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.total, 4);
    assert!(summary.succeed >= 1, "{summary:?}");
    assert!(
        summary.stopped >= 1,
        "the rest were not copied: {summary:?}"
    );
    assert_eq!(summary.succeed + summary.stopped + summary.failed, 4);
    assert_eq!(
        policies::stop_execution(&db.pool, id).await.unwrap(),
        Some(false)
    );
    assert_eq!(
        policies::stop_execution(&db.pool, 999_999).await.unwrap(),
        None
    );
}
