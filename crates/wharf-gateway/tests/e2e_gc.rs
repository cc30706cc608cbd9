//! Garbage collection through a real `wharf serve`: the Harbor API flow
//! (manual runs, dry runs, history, logs, schedules, stop, permissions), and
//! a stress test where clients push, pull and delete images while
//! collections run one after another with no grace period at all, after
//! which every acknowledged image that was not deleted must pull intact.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use support::*;

/// No grace period: the collector may take a layer the moment it is
/// uploaded, so every race between pushes and collections is live.
const AGGRESSIVE: &str = "[registry]\ngc_grace_period_secs = 0\n";

async fn aggressive() -> Option<(Backend, Server)> {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: /api/v2.0/system/gc is Wharf's; the reference registry has none");
        return None;
    }
    let file = backend.data_dir().join("gc.toml");
    std::fs::write(&file, AGGRESSIVE).unwrap();
    let server = backend
        .start_with_env(&[("WHARF_CONFIG", file.display().to_string())])
        .await;
    Some((backend, server))
}

/// The GC API as the administrator (or another caller) uses it.
struct GcApi {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
}

impl GcApi {
    fn admin(server: &Server) -> Self {
        Self::as_user(server, Some((E2E_ADMIN.0.into(), E2E_ADMIN.1.into())))
    }

    fn as_user(server: &Server, auth: Option<(String, String)>) -> Self {
        GcApi {
            base: format!("{}/api/v2.0", server.base),
            http: reqwest::Client::new(),
            auth,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Some((user, password)) => rb.basic_auth(user, Some(password)),
            None => rb,
        }
    }

    async fn schedule(
        &self,
        method: reqwest::Method,
        body: Value,
    ) -> Result<(StatusCode, Option<String>, String)> {
        let resp = self
            .req(method, "/system/gc/schedule")
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((status, location, resp.text().await?))
    }

    /// `POST /system/gc/schedule` with type `Manual`: the new execution's id.
    async fn run(&self, parameters: Value) -> Result<i64> {
        let (status, location, text) = self
            .schedule(
                reqwest::Method::POST,
                json!({"schedule": {"type": "Manual"}, "parameters": parameters}),
            )
            .await?;
        ensure!(status == StatusCode::CREATED, "manual GC: {status} {text}");
        let location = location.ok_or_else(|| anyhow::anyhow!("no Location"))?;
        let id = location
            .strip_prefix("/api/v2.0/system/gc/")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("Location {location}"))?;
        Ok(id)
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, String)> {
        let resp = self.req(reqwest::Method::GET, path).send().await?;
        Ok((resp.status(), resp.text().await?))
    }

    async fn execution(&self, id: i64) -> Result<Value> {
        let (status, text) = self.get(&format!("/system/gc/{id}")).await?;
        ensure!(status == StatusCode::OK, "GET gc {id}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// Poll until the execution is final; its history item.
    async fn wait(&self, id: i64) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let item = self.execution(id).await?;
            let status = item["job_status"].as_str().unwrap_or("").to_owned();
            if matches!(status.as_str(), "Success" | "Error" | "Stopped") {
                return Ok(item);
            }
            ensure!(Instant::now() < deadline, "GC {id} still {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn log(&self, id: i64) -> Result<String> {
        let (status, text) = self.get(&format!("/system/gc/{id}/log")).await?;
        ensure!(status == StatusCode::OK, "GET gc {id} log: {status} {text}");
        Ok(text)
    }

    /// Run a collection to completion; its log. Fails unless it succeeded.
    async fn collect(&self, parameters: Value) -> Result<String> {
        let id = self.run(parameters).await?;
        let item = self.wait(id).await?;
        let log = self.log(id).await?;
        ensure!(item["job_status"] == "Success", "GC {id}: {item}\n{log}");
        Ok(log)
    }
}

/// The number in "step 3/5 done: <verb> N blobs" of a run's log.
fn blobs_deleted(log: &str) -> u64 {
    log.lines()
        .find_map(|l| {
            let rest = l.split("step 3/5 done: ").nth(1)?;
            rest.split_whitespace().find_map(|w| w.parse().ok())
        })
        .unwrap_or_else(|| panic!("no blob count in the log:\n{log}"))
}

fn digest_file(data_dir: &Path, digest: &str) -> std::path::PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap();
    data_dir
        .join("storage")
        .join("blobs")
        .join(algorithm)
        .join(&hex[..2])
        .join(hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gc_api_runs_dry_and_real_collections_with_history_logs_and_schedules() {
    let Some((backend, server)) = aggressive().await else {
        return;
    };
    server.create_project("flow", false).await.unwrap();
    let base = server.base.as_str();
    let oci = Oci::new();
    let mut rng = Rng::new();
    let kept = random_image(&mut rng, 1, 16 * 1024, "amd64");
    oci.push_image(base, "flow/app", "v1", &kept).await.unwrap();
    let gone = random_image(&mut rng, 2, 16 * 1024, "amd64");
    oci.push_image(base, "flow/app", "v2", &gone).await.unwrap();
    let resp = oci
        .send(oci.http.delete(format!(
            "{base}/v2/flow/app/manifests/{}",
            gone.manifest.digest
        )))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    // Config, two layers and the manifest's own bytes.
    let garbage = 4;
    let api = GcApi::admin(&server);

    let anonymous = GcApi::as_user(&server, None);
    assert_eq!(anonymous.get("/system/gc").await.unwrap().0, 401);
    let (status, _, text) = api
        .schedule(
            reqwest::Method::POST,
            json!({"schedule": {"type": "Manual"}, "parameters": {"workers": 6}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Invalid number of workers:6"), "{text}");

    // Dry run: says what would go, removes nothing.
    let dry = api.run(json!({"dry_run": true})).await.unwrap();
    let item = api.wait(dry).await.unwrap();
    assert_eq!(item["job_status"], "Success", "{item}");
    assert_eq!(item["job_name"], "GARBAGE_COLLECTION");
    assert_eq!(item["job_kind"], "MANUAL");
    assert_eq!(item["schedule"]["type"], "MANUAL");
    let parameters: Value = serde_json::from_str(item["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(parameters["dry_run"], true);
    let log = api.log(dry).await.unwrap();
    assert!(log.contains("would delete"), "{log}");
    assert_eq!(blobs_deleted(&log), garbage, "{log}");
    for blob in gone.blobs() {
        assert!(digest_file(backend.data_dir(), &blob.digest).exists());
    }

    // The real run: the bytes leave the disk.
    let real = api.run(json!({"workers": 2})).await.unwrap();
    assert_eq!(api.wait(real).await.unwrap()["job_status"], "Success");
    let log = api.log(real).await.unwrap();
    assert_eq!(blobs_deleted(&log), garbage, "{log}");
    assert!(log.contains("freeing"), "{log}");
    assert!(log.contains("garbage collection finished"), "{log}");
    for blob in gone.blobs().chain([&gone.manifest]) {
        assert!(
            !digest_file(backend.data_dir(), &blob.digest).exists(),
            "{} should have left the disk",
            blob.digest
        );
    }
    oci.assert_image(base, "flow/app", "v1", &kept)
        .await
        .unwrap();

    // History: newest first, with its paging headers.
    let resp = api
        .req(reqwest::Method::GET, "/system/gc?page_size=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "2");
    assert!(resp.headers().contains_key("link"));
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page[0]["id"], real);
    assert_eq!(api.get("/system/gc/999999").await.unwrap().0, 404);

    // Schedules: set, change, read back, remove.
    let (status, _, text) = api
        .schedule(
            reqwest::Method::POST,
            json!({"schedule": {"type": "Custom", "cron": "0 0 3 * * *"},
                   "parameters": {"delete_untagged": true, "workers": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");
    let (_, text) = api.get("/system/gc/schedule").await.unwrap();
    let schedule: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schedule["schedule"]["type"], "Custom", "{schedule}");
    assert_eq!(schedule["schedule"]["cron"], "0 0 3 * * *");
    assert!(schedule["schedule"]["next_scheduled_time"].is_string());
    assert!(
        schedule["job_parameters"]
            .as_str()
            .unwrap()
            .contains("\"delete_untagged\":true")
    );
    let (status, _, _) = api
        .schedule(reqwest::Method::PUT, json!({"schedule": {"type": "Daily"}}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, text) = api.get("/system/gc/schedule").await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["schedule"]["type"],
        "Daily"
    );
    let (status, _, text) = api
        .schedule(
            reqwest::Method::POST,
            json!({"schedule": {"type": "Custom", "cron": "0 0 3 * *"}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{text}");
    api.schedule(reqwest::Method::PUT, json!({"schedule": {"type": "None"}}))
        .await
        .unwrap();
    let (status, text) = api.get("/system/gc/schedule").await.unwrap();
    assert_eq!((status.as_u16(), text.as_str()), (200, ""));

    // While a collection cannot run (another holds the run lock: a `wharf
    // gc`, say), a second is refused, and the first can be stopped.
    let mut blocker = sqlx::PgConnection::connect(backend.database_url().unwrap())
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock(x'0b10b0c0'::int, 0)")
        .execute(&mut blocker)
        .await
        .unwrap();
    let waiting = api.run(json!({})).await.unwrap();
    let (status, _, text) = api
        .schedule(
            reqwest::Method::POST,
            json!({"schedule": {"type": "Manual"}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{text}");
    let resp = api
        .req(reqwest::Method::PUT, &format!("/system/gc/{waiting}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let item = api.wait(waiting).await.unwrap();
    assert_eq!(item["job_status"], "Stopped", "{item}");
    blocker.close().await.unwrap();
    api.collect(json!({})).await.unwrap();

    // A robot granted the system resource may read the history, no more.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2.0/robots", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({
            "name": "gc-watch", "level": "system", "duration": -1,
            "permissions": [{"kind": "system", "namespace": "/", "access": [
                {"resource": "garbage-collection", "action": "list"},
                {"resource": "garbage-collection", "action": "read"}]}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let robot: Value = resp.json().await.unwrap();
    let watcher = GcApi::as_user(
        &server,
        Some((
            robot["name"].as_str().unwrap().into(),
            robot["secret"].as_str().unwrap().into(),
        )),
    );
    assert_eq!(watcher.get("/system/gc").await.unwrap().0, 200);
    assert_eq!(
        watcher
            .get(&format!("/system/gc/{real}/log"))
            .await
            .unwrap()
            .0,
        200
    );
    let (status, _, _) = watcher
        .schedule(
            reqwest::Method::POST,
            json!({"schedule": {"type": "Manual"}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
}

/// The server's warnings and errors (the causes behind a 500).
fn warnings(server: &Server) -> String {
    server
        .log_tail(5000)
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the clients of the stress test share.
#[derive(Default)]
struct Ledger {
    /// Acknowledged and never to be deleted: pulled all along.
    keep: Vec<(String, String, Image)>,
    /// Acknowledged; the deleter takes some of them.
    deletable: Vec<(String, String, Image)>,
    /// Deleted by digest: must be gone.
    deleted: Vec<(String, Image)>,
}

/// Layers many images share, so collections meet blobs that are garbage in
/// one moment and referenced again the next.
fn shared_layers(rng: &mut Rng) -> Vec<Blob> {
    (0..4).map(|_| random_layer(rng, 4 * 1024).0).collect()
}

/// An image of one fresh layer plus, sometimes, a shared one.
fn stress_image(rng: &mut Rng, shared: &[Blob]) -> Image {
    let mut image = random_image(rng, 1, 4 * 1024, "amd64");
    if rng.next_u64().is_multiple_of(2) {
        image
            .layers
            .push(shared[(rng.next_u64() % shared.len() as u64) as usize].clone());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": image.config.descriptor(),
            "layers": image.layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        image.manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    }
    image
}

/// Push as a client does: skip blobs the registry says it has, and when the
/// manifest is refused because a blob went meanwhile, upload everything
/// again and retry. Returns how many retries it took.
async fn push_like_a_client(
    oci: &Oci,
    base: &str,
    repo: &str,
    tag: &str,
    image: &Image,
) -> Result<usize> {
    for attempt in 0..20 {
        for blob in image.blobs() {
            if attempt == 0 && oci.head_blob(base, repo, &blob.digest).await? == StatusCode::OK {
                continue;
            }
            oci.push_blob(base, repo, &blob.bytes).await?;
        }
        match oci.put_manifest(base, repo, tag, &image.manifest).await {
            Ok(_) => return Ok(attempt),
            Err(e) if format!("{e:#}").contains("MANIFEST_BLOB_UNKNOWN") => continue,
            Err(e) => return Err(e),
        }
    }
    bail!("{repo}:{tag} refused 20 times")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_image_survives_collections_running_during_pushes_pulls_and_deletes() {
    let Some((backend, server)) = aggressive().await else {
        return;
    };
    // One project and its repositories shared by every pushing client: its
    // quota row serialises their pushes with the collector's deletions, and
    // shared layers are charged and released under every interleaving.
    server.create_project("stress", false).await.unwrap();
    let base = server.base.clone();
    let api = GcApi::admin(&server);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let retries = Arc::new(AtomicUsize::new(0));
    let pulls = Arc::new(AtomicUsize::new(0));
    let shared = shared_layers(&mut Rng::new());

    let mut clients = Vec::new();
    for worker in 0..3 {
        let (ledger, stop, retries, shared, base) = (
            ledger.clone(),
            stop.clone(),
            retries.clone(),
            shared.clone(),
            base.clone(),
        );
        clients.push(tokio::spawn(async move {
            let oci = Oci::new();
            let mut rng = Rng::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let image = stress_image(&mut rng, &shared);
                let repo = format!("stress/app{}", i % 3);
                let keep = i % 2 == 0;
                let tag = format!("{}-{worker}-{i}", if keep { "keep" } else { "del" });
                retries.fetch_add(
                    push_like_a_client(&oci, &base, &repo, &tag, &image).await?,
                    Ordering::SeqCst,
                );
                let mut ledger = ledger.lock().unwrap();
                let list = if keep {
                    &mut ledger.keep
                } else {
                    &mut ledger.deletable
                };
                list.push((repo, tag, image));
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    for _ in 0..2 {
        let (ledger, stop, pulls, base) =
            (ledger.clone(), stop.clone(), pulls.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let oci = Oci::new();
            let mut rng = Rng::new();
            while !stop.load(Ordering::SeqCst) {
                let pick = {
                    let ledger = ledger.lock().unwrap();
                    let n = ledger.keep.len() as u64;
                    (n > 0).then(|| ledger.keep[(rng.next_u64() % n) as usize].clone())
                };
                match pick {
                    Some((repo, tag, image)) => {
                        oci.assert_image(&base, &repo, &tag, &image).await?;
                        pulls.fetch_add(1, Ordering::SeqCst);
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            anyhow::Ok(())
        }));
    }
    {
        let (ledger, stop, base) = (ledger.clone(), stop.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let oci = Oci::new();
            let mut rng = Rng::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let pick = {
                    let mut ledger = ledger.lock().unwrap();
                    let len = ledger.deletable.len() as u64;
                    (len > 2).then(|| {
                        ledger
                            .deletable
                            .swap_remove((rng.next_u64() % len) as usize)
                    })
                };
                let Some((repo, tag, image)) = pick else {
                    continue;
                };
                n += 1;
                // By digest (the artifact goes), or only the tag (it becomes
                // untagged: a collection with delete_untagged takes it).
                let by_digest = n.is_multiple_of(2);
                let reference = if by_digest {
                    &image.manifest.digest
                } else {
                    &tag
                };
                let resp = oci
                    .send(
                        oci.http
                            .delete(format!("{base}/v2/{repo}/manifests/{reference}")),
                    )
                    .await?;
                ensure!(
                    resp.status() == StatusCode::ACCEPTED,
                    "DELETE {repo}:{reference}: {}",
                    resp.status()
                );
                if by_digest {
                    ledger.lock().unwrap().deleted.push((repo, image));
                }
            }
            anyhow::Ok(())
        }));
    }

    // Collections one after another while the clients work.
    let started = Instant::now();
    let mut runs = 0;
    let mut collected = 0;
    while started.elapsed() < Duration::from_secs(25) {
        let parameters = json!({
            "dry_run": runs % 5 == 4,
            "delete_untagged": runs % 2 == 1,
            "workers": 1 + runs % 5,
        });
        let log = api.collect(parameters.clone()).await.unwrap();
        if parameters["dry_run"] == false {
            collected += blobs_deleted(&log);
        }
        runs += 1;
        if let Some(failed) = clients.iter().position(|c| c.is_finished()) {
            stop.store(true, Ordering::SeqCst);
            let result = clients.swap_remove(failed).await.unwrap();
            panic!(
                "a client stopped early: {result:?}\nserver warnings:\n{}",
                warnings(&server)
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        if let Err(e) = client.await.unwrap() {
            panic!(
                "a client failed: {e:#}\nserver warnings:\n{}",
                warnings(&server)
            );
        }
    }
    collected += blobs_deleted(&api.collect(json!({"delete_untagged": true})).await.unwrap());

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "{runs} collections deleted {collected} blobs while {} images were kept, {} deleted, \
         {} pulls checked, {} pushes retried after losing a blob",
        ledger.keep.len() + ledger.deletable.len(),
        ledger.deleted.len(),
        pulls.load(Ordering::SeqCst),
        retries.load(Ordering::SeqCst),
    );
    assert!(runs >= 3, "only {runs} collections ran");
    assert!(collected > 0, "the collections deleted nothing");
    assert!(
        ledger.keep.len() >= 10,
        "only {} images pushed",
        ledger.keep.len()
    );
    let oci = Oci::new();
    for (repo, tag, image) in ledger.keep.iter().chain(&ledger.deletable) {
        oci.assert_image(&base, repo, tag, image)
            .await
            .unwrap_or_else(|e| panic!("{repo}:{tag} after the collections: {e:#}"));
    }
    for (repo, image) in &ledger.deleted {
        let pulled = oci
            .get_manifest(&base, repo, &image.manifest.digest)
            .await
            .unwrap();
        assert_eq!(
            pulled.status,
            StatusCode::NOT_FOUND,
            "{repo}@{} deleted",
            image.manifest.digest
        );
    }
    // Underneath: every blob the database knows has its bytes on disk.
    let mut db = sqlx::PgConnection::connect(backend.database_url().unwrap())
        .await
        .unwrap();
    let digests: Vec<String> = sqlx::query_scalar("SELECT digest FROM blobs")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for digest in digests {
        assert!(
            digest_file(backend.data_dir(), &digest).exists(),
            "{digest} has a row but no bytes"
        );
    }
}
