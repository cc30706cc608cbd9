//! Storage quotas end to end against a real `wharf serve`: skopeo refused
//! over the limit with the message and usage unchanged, layers shared by
//! images counted once per project (and again in each project), usage exact
//! under many concurrent pushes and deletes, deletes releasing exactly, and
//! the repair recalculation fixing a corrupted usage. Wharf only: the
//! reference registry has no quotas.

mod support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    Backend, Blob, E2E_ADMIN, Flavor, Image, OCI_CONFIG, OCI_MANIFEST, Oci, Rng, Server,
    random_layer, run, tool,
};

/// Administrator calls to the REST API.
struct Api<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Api<'_> {
    fn new(server: &Server) -> Api<'_> {
        Api {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/api/v2.0{path}", self.server.base))
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1));
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn project_id(&self, name: &str) -> i64 {
        let (status, project) = self
            .call(reqwest::Method::GET, &format!("/projects/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{project}");
        project["project_id"].as_i64().unwrap()
    }

    /// The project's quota as `GET /quotas?reference_id=` shows it.
    async fn quota(&self, project: &str) -> Value {
        let id = self.project_id(project).await;
        let (status, list) = self
            .call(
                reqwest::Method::GET,
                &format!("/quotas?reference=project&reference_id={id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list[0].clone()
    }

    async fn used(&self, project: &str) -> i64 {
        self.quota(project).await["used"]["storage"]
            .as_i64()
            .unwrap()
    }

    async fn set_limit(&self, project: &str, limit: i64) {
        let id = self.quota(project).await["id"].as_i64().unwrap();
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/quotas/{id}"),
                Some(json!({"hard": {"storage": limit}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn wharf() -> Option<(Backend, Server)> {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: quotas are Wharf's, the reference registry has none");
        return None;
    }
    let server = backend.start().await;
    Some((backend, server))
}

/// An image with these layers (and a config and manifest of its own).
fn image_with(rng: &mut Rng, layers: &[(Blob, String)]) -> Image {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "nonce": format!("{:x}", rng.next_u64()) } },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>() },
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(|(b, _)| b.descriptor()).collect::<Vec<_>>(),
    });
    Image {
        config,
        layers: layers.iter().map(|(b, _)| b.clone()).collect(),
        manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
    }
}

/// What a project holding these images is charged: every distinct blob
/// (manifests, configs, layers) once.
fn usage_of<'a>(images: impl IntoIterator<Item = &'a Image>) -> i64 {
    let mut seen = std::collections::BTreeMap::new();
    for image in images {
        for blob in std::iter::once(&image.manifest).chain(image.blobs()) {
            seen.insert(blob.digest.clone(), blob.bytes.len() as i64);
        }
    }
    seen.values().sum()
}

async fn database(backend: &Backend) -> sqlx::PgPool {
    sqlx::PgPool::connect(backend.database_url().expect("wharf has a database"))
        .await
        .expect("connect to the server's database")
}

/// The recalculated usage equals the recorded one (and is `expected`).
async fn assert_exact(backend: &Backend, api: &Api<'_>, project: &str, expected: i64) {
    let pool = database(backend).await;
    let id = api.project_id(project).await;
    let again = wharf_projects::quotas::recalculate(&pool, id)
        .await
        .unwrap();
    assert_eq!(
        (again.before, again.after),
        (expected, expected),
        "usage of {project} must equal what its manifests add up to"
    );
    pool.close().await;
}

async fn delete_manifest(
    oci: &Oci,
    server: &Server,
    repo: &str,
    reference: &str,
) -> reqwest::Response {
    oci.send(
        oci.http
            .delete(format!("{}/v2/{repo}/manifests/{reference}", server.base)),
    )
    .await
    .unwrap()
}

struct Skopeo {
    bin: std::path::PathBuf,
    policy: std::path::PathBuf,
}

impl Skopeo {
    fn new(dir: &Path) -> Option<Skopeo> {
        let policy = dir.join("policy.json");
        std::fs::write(
            &policy,
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .ok()?;
        Some(Skopeo {
            bin: tool("skopeo")?,
            policy,
        })
    }

    /// Copy the OCI layout's `v1` into the registry as the administrator.
    fn push(&self, layout: &Path, to: &str) -> anyhow::Result<Vec<u8>> {
        run(Command::new(&self.bin)
            .arg("--policy")
            .arg(&self.policy)
            .args(["copy", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", &format!("{}:{}", E2E_ADMIN.0, E2E_ADMIN.1)])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{to}")))
    }
}

fn layout(dir: &Path, name: &str, image: &Image) -> std::path::PathBuf {
    let path = dir.join(name);
    support::write_oci_layout(&path, "v1", &image.manifest, image.blobs()).unwrap();
    path
}

#[tokio::test]
async fn skopeo_over_the_limit_is_refused_with_the_numbers_and_usage_unchanged() {
    let Some((backend, server)) = wharf().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = Skopeo::new(work.path()) else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let api = Api::new(&server);
    let mut rng = Rng::new();
    let first = support::random_image(&mut rng, 2, 64 * 1024, "amd64");
    skopeo
        .push(
            &layout(work.path(), "first", &first),
            &format!("{}/team/app:v1", server.host()),
        )
        .unwrap();
    let used = api.used("team").await;
    assert_eq!(used, usage_of([&first]), "usage is what skopeo pushed");

    // Room for a few kilobytes more: the next image (two new 64 KiB layers)
    // does not fit.
    let limit = used + 4096;
    api.set_limit("team", limit).await;
    let second = support::random_image(&mut rng, 2, 64 * 1024, "amd64");
    let refused = skopeo
        .push(
            &layout(work.path(), "second", &second),
            &format!("{}/team/app:v2", server.host()),
        )
        .expect_err("the push over the limit must fail");
    let stderr = refused.to_string();
    let adding = usage_of([&second]);
    let expected = format!(
        "quota exceeded in project team: limit {} ({limit} B), in use {} ({used} B), this push adds {} ({adding} B)",
        wharf_projects::quotas::human_size(limit),
        wharf_projects::quotas::human_size(used),
        wharf_projects::quotas::human_size(adding),
    );
    assert!(
        stderr.contains(&expected),
        "skopeo said:\n{stderr}\nexpected:\n{expected}"
    );
    assert_eq!(api.used("team").await, used, "usage unchanged");
    let quota = api.quota("team").await;
    assert_eq!(quota["hard"]["storage"], limit);
    assert_exact(&backend, &api, "team", used).await;
    let oci = Oci::new();
    let tags = oci.tags(&server.base, "team/app").await.unwrap();
    assert_eq!(tags, ["v1"], "the refused tag does not exist");

    // Pushing what is already there costs nothing and still works.
    skopeo
        .push(
            &layout(work.path(), "first", &first),
            &format!("{}/team/copy:v1", server.host()),
        )
        .unwrap();
    assert_eq!(api.used("team").await, used);

    // Once full, uploads are refused before any bytes move (a new image:
    // the refused push above left its blobs behind, uploaded but uncharged).
    api.set_limit("team", used).await;
    let third = support::random_image(&mut rng, 1, 16 * 1024, "amd64");
    let refused = skopeo
        .push(
            &layout(work.path(), "third", &third),
            &format!("{}/team/app:v3", server.host()),
        )
        .expect_err("a full project takes no uploads");
    assert!(
        refused.to_string().contains("nothing more can be pushed"),
        "{refused}"
    );

    // With the limit raised the same push goes through and is charged.
    api.set_limit("team", -1).await;
    skopeo
        .push(
            &layout(work.path(), "second", &second),
            &format!("{}/team/app:v2", server.host()),
        )
        .unwrap();
    assert_eq!(api.used("team").await, usage_of([&first, &second]));
}

#[tokio::test]
async fn shared_layers_count_once_per_project_and_in_each_project() {
    let Some((backend, server)) = wharf().await else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    server.create_project("ops", false).await.unwrap();
    let api = Api::new(&server);
    let oci = Oci::new();
    let mut rng = Rng::new();
    let base: Vec<(Blob, String)> = (0..2).map(|_| random_layer(&mut rng, 48 * 1024)).collect();
    let mut a_layers = base.clone();
    a_layers.push(random_layer(&mut rng, 16 * 1024));
    let mut b_layers = base.clone();
    b_layers.push(random_layer(&mut rng, 16 * 1024));
    let a = image_with(&mut rng, &a_layers);
    let b = image_with(&mut rng, &b_layers);

    oci.push_image(&server.base, "team/app", "a", &a)
        .await
        .unwrap();
    assert_eq!(api.used("team").await, usage_of([&a]));
    oci.push_image(&server.base, "team/app", "b", &b)
        .await
        .unwrap();
    let both = usage_of([&a, &b]);
    assert!(
        both < usage_of([&a]) + usage_of([&b]),
        "the images share layers"
    );
    assert_eq!(api.used("team").await, both, "shared layers counted once");
    // The same image again in another repository of the project.
    oci.push_image(&server.base, "team/mirror", "a", &a)
        .await
        .unwrap();
    assert_eq!(api.used("team").await, both);
    assert_exact(&backend, &api, "team", both).await;

    // Another project pays for the same blobs itself.
    oci.push_image(&server.base, "ops/app", "a", &a)
        .await
        .unwrap();
    assert_eq!(api.used("ops").await, usage_of([&a]));
    assert_eq!(api.used("team").await, both);
    let (_, summary) = api
        .call(reqwest::Method::GET, "/projects/ops/summary", None)
        .await;
    assert_eq!(summary["quota"]["used"]["storage"], usage_of([&a]));
}

#[tokio::test]
async fn deletes_release_exactly_what_nothing_else_references() {
    let Some((backend, server)) = wharf().await else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let api = Api::new(&server);
    let oci = Oci::new();
    let mut rng = Rng::new();
    let shared = random_layer(&mut rng, 32 * 1024);
    let own = [
        random_layer(&mut rng, 8 * 1024),
        random_layer(&mut rng, 8 * 1024),
    ];
    let a = image_with(&mut rng, &[shared.clone(), own[0].clone()]);
    let b = image_with(&mut rng, &[shared.clone(), own[1].clone()]);
    oci.push_image(&server.base, "team/app", "a", &a)
        .await
        .unwrap();
    oci.push_image(&server.base, "team/app", "b", &b)
        .await
        .unwrap();
    oci.push_image(&server.base, "team/mirror", "b", &b)
        .await
        .unwrap();
    assert_eq!(api.used("team").await, usage_of([&a, &b]));

    // A tag delete releases nothing: the artifact stays.
    let resp = delete_manifest(&oci, &server, "team/app", "a").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(api.used("team").await, usage_of([&a, &b]));
    // The artifact goes: its manifest, config and own layer, not the shared one.
    let resp = delete_manifest(&oci, &server, "team/app", &a.manifest.digest).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(api.used("team").await, usage_of([&b]));
    // `b` is still in team/mirror.
    delete_manifest(&oci, &server, "team/app", &b.manifest.digest).await;
    assert_eq!(api.used("team").await, usage_of([&b]));
    delete_manifest(&oci, &server, "team/mirror", &b.manifest.digest).await;
    assert_eq!(api.used("team").await, 0);
    assert_exact(&backend, &api, "team", 0).await;
}

#[tokio::test]
async fn many_concurrent_pushes_and_deletes_keep_usage_exact() {
    let Some((backend, server)) = wharf().await else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let api = Api::new(&server);
    let oci = Oci::new();
    let mut rng = Rng::new();
    let base: Vec<(Blob, String)> = (0..2).map(|_| random_layer(&mut rng, 24 * 1024)).collect();
    let images: Vec<Image> = (0..24)
        .map(|_| {
            let mut layers = base.clone();
            layers.push(random_layer(&mut rng, 4 * 1024));
            image_with(&mut rng, &layers)
        })
        .collect();

    let mut tasks = Vec::new();
    for (i, image) in images.iter().cloned().enumerate() {
        let (oci, url) = (oci.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            oci.push_image(
                &url,
                &format!("team/app{}", i % 4),
                &format!("v{i}"),
                &image,
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(api.used("team").await, usage_of(&images));
    assert_exact(&backend, &api, "team", usage_of(&images)).await;

    // Deletes of half of them race with pushes of new ones.
    let late: Vec<Image> = (0..12)
        .map(|_| {
            let layers = [base[0].clone(), random_layer(&mut rng, 4 * 1024)];
            image_with(&mut rng, &layers)
        })
        .collect();
    let mut tasks = Vec::new();
    for (i, image) in images.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let (oci, url, digest) = (
            oci.clone(),
            server.base.clone(),
            image.manifest.digest.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = oci
                .send(
                    oci.http
                        .delete(format!("{url}/v2/team/app{}/manifests/{digest}", i % 4)),
                )
                .await?;
            anyhow::ensure!(
                resp.status() == StatusCode::ACCEPTED,
                "delete: {}",
                resp.status()
            );
            Ok(())
        }));
    }
    for (i, image) in late.iter().cloned().enumerate() {
        let (oci, url) = (oci.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            oci.push_image(&url, "team/late", &format!("late{i}"), &image)
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let survivors: Vec<&Image> = images
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, image)| image)
        .chain(late.iter())
        .collect();
    let expected = usage_of(survivors);
    assert_eq!(api.used("team").await, expected);
    assert_exact(&backend, &api, "team", expected).await;
}

#[tokio::test]
async fn recalculation_repairs_a_corrupted_usage() {
    let Some((backend, server)) = wharf().await else {
        return;
    };
    server.create_project("team", false).await.unwrap();
    let api = Api::new(&server);
    let oci = Oci::new();
    let mut rng = Rng::new();
    let image = support::random_image(&mut rng, 2, 16 * 1024, "amd64");
    oci.push_image(&server.base, "team/app", "v1", &image)
        .await
        .unwrap();
    let right = usage_of([&image]);
    assert_eq!(api.used("team").await, right);

    let pool = database(&backend).await;
    let id = api.project_id("team").await;
    sqlx::query("UPDATE project_quotas SET used = 1 WHERE project_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM project_blobs WHERE project_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(api.used("team").await, 1);
    let repaired = wharf_projects::quotas::recalculate_all(&pool)
        .await
        .unwrap();
    assert!(
        repaired
            .iter()
            .any(|r| r.project_id == id && r.before == 1 && r.after == right),
        "{repaired:?}"
    );
    assert_eq!(api.used("team").await, right);
    // The rebuilt accounting is what later deletes release from.
    delete_manifest(&oci, &server, "team/app", &image.manifest.digest).await;
    assert_eq!(api.used("team").await, 0);
    pool.close().await;
}

/// A manual garbage collection through the API, to completion.
async fn collect(api: &Api<'_>, delete_untagged: bool) -> anyhow::Result<()> {
    let resp = api
        .http
        .post(format!("{}/api/v2.0/system/gc/schedule", api.server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({
            "schedule": {"type": "Manual"},
            "parameters": {"delete_untagged": delete_untagged, "workers": 2},
        }))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status() == StatusCode::CREATED,
        "manual GC: {}",
        resp.status()
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no Location"))?;
    let id = location.rsplit('/').next().unwrap_or_default().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (status, item) = api
            .call(reqwest::Method::GET, &format!("/system/gc/{id}"), None)
            .await;
        anyhow::ensure!(status == StatusCode::OK, "GET gc {id}: {status} {item}");
        match item["job_status"].as_str() {
            Some("Success") => return Ok(()),
            Some("Error" | "Stopped") => anyhow::bail!("GC {id}: {item}"),
            _ => {}
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "GC {id} never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Push as a client does: blobs, then the manifest; when a collection took
/// a blob meanwhile (`MANIFEST_BLOB_UNKNOWN`), upload again and retry.
async fn push_retrying(
    oci: &Oci,
    base: &str,
    repo: &str,
    tag: &str,
    image: &Image,
) -> anyhow::Result<()> {
    for _ in 0..20 {
        for blob in image.blobs() {
            oci.push_blob(base, repo, &blob.bytes).await?;
        }
        match oci.put_manifest(base, repo, tag, &image.manifest).await {
            Ok(_) => return Ok(()),
            Err(e) if format!("{e:#}").contains("MANIFEST_BLOB_UNKNOWN") => continue,
            Err(e) => return Err(e),
        }
    }
    anyhow::bail!("{repo}:{tag} refused 20 times")
}

/// Pushes, re-pushes, copies, tag creations and deletes of images sharing
/// layers, all in one project and at once, while garbage collection (no
/// grace period) deletes untagged artifacts and blobs: no request fails, and
/// afterwards the recorded usage is what the project's manifests add up to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_writers_in_one_project_keeps_usage_exact() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: quotas are Wharf's, the reference registry has none");
        return;
    }
    let config = backend.data_dir().join("storm.toml");
    std::fs::write(&config, "[registry]\ngc_grace_period_secs = 0\n").unwrap();
    let server = backend
        .start_with_env(&[("WHARF_CONFIG", config.display().to_string())])
        .await;
    server.create_project("storm", false).await.unwrap();
    let api = Api::new(&server);
    let base = server.base.clone();
    // Every pusher's n-th image takes the n-th of these, so several pushes
    // charge the same new layer at the same moment, over and over.
    let mut rng = Rng::new();
    let generations: Arc<Vec<(Blob, String)>> =
        Arc::new((0..400).map(|_| random_layer(&mut rng, 2048)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let pushed: Arc<Mutex<Vec<(String, String, Image)>>> = Arc::default();
    let writes = Arc::new(AtomicUsize::new(0));

    let mut clients = Vec::new();
    for worker in 0..6 {
        let (generations, stop, pushed, writes, base) = (
            generations.clone(),
            stop.clone(),
            pushed.clone(),
            writes.clone(),
            base.clone(),
        );
        clients.push(tokio::spawn(async move {
            let oci = Oci::new();
            let mut rng = Rng::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && i < generations.len() {
                let layers = [generations[i].clone(), random_layer(&mut rng, 1024)];
                let image = image_with(&mut rng, &layers);
                let repo = format!("storm/app{}", i % 3);
                let tag = format!("w{worker}-{i}");
                push_retrying(&oci, &base, &repo, &tag, &image).await?;
                writes.fetch_add(1, Ordering::SeqCst);
                // The same image again in another repository: nothing new
                // to charge, everything to check.
                if i % 4 == worker % 4 {
                    push_retrying(&oci, &base, "storm/mirror", &tag, &image).await?;
                    writes.fetch_add(1, Ordering::SeqCst);
                }
                pushed.lock().unwrap().push((repo, tag, image));
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    // Copies and new tags: several manifests admitted in one transaction.
    {
        let (stop, pushed, writes, base) =
            (stop.clone(), pushed.clone(), writes.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = Rng::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let pick = {
                    let pushed = pushed.lock().unwrap();
                    let len = pushed.len() as u64;
                    (len > 0).then(|| pushed[(rng.next_u64() % len) as usize].clone())
                };
                let Some((repo, _, image)) = pick else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                n += 1;
                let segment = repo.trim_start_matches("storm/");
                let resp = if n.is_multiple_of(2) {
                    http.post(format!(
                        "{base}/api/v2.0/projects/storm/repositories/copies/artifacts?from={repo}@{}",
                        image.manifest.digest
                    ))
                    .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
                    .send()
                    .await?
                } else {
                    http.post(format!(
                        "{base}/api/v2.0/projects/storm/repositories/{segment}/artifacts/{}/tags",
                        image.manifest.digest
                    ))
                    .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
                    .json(&json!({"name": format!("extra{n}")}))
                    .send()
                    .await?
                };
                let status = resp.status();
                // A collection or a delete may have taken the artifact.
                anyhow::ensure!(
                    status.is_success() || status == StatusCode::NOT_FOUND,
                    "copy or tag of {repo}@{}: {status} {}",
                    image.manifest.digest,
                    resp.text().await.unwrap_or_default()
                );
                if status.is_success() {
                    writes.fetch_add(1, Ordering::SeqCst);
                }
            }
            anyhow::Ok(())
        }));
    }
    // Deletes by digest (the artifact goes) and by tag (it becomes untagged,
    // for a collection to take).
    {
        let (stop, pushed, writes, base) =
            (stop.clone(), pushed.clone(), writes.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let oci = Oci::new();
            let mut rng = Rng::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let pick = {
                    let mut pushed = pushed.lock().unwrap();
                    let len = pushed.len() as u64;
                    (len > 4).then(|| pushed.swap_remove((rng.next_u64() % len) as usize))
                };
                let Some((repo, tag, image)) = pick else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                n += 1;
                let reference = if n.is_multiple_of(2) {
                    image.manifest.digest.clone()
                } else {
                    tag
                };
                let resp = oci
                    .send(
                        oci.http
                            .delete(format!("{base}/v2/{repo}/manifests/{reference}")),
                    )
                    .await?;
                let status = resp.status();
                anyhow::ensure!(
                    status == StatusCode::ACCEPTED || status == StatusCode::NOT_FOUND,
                    "DELETE {repo}:{reference}: {status} {}",
                    resp.text().await.unwrap_or_default()
                );
                writes.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(())
        }));
    }

    let started = std::time::Instant::now();
    let mut collections = 0;
    while started.elapsed() < std::time::Duration::from_secs(15) {
        collect(&api, collections % 2 == 0).await.unwrap();
        collections += 1;
        if clients.iter().any(|c| c.is_finished()) {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for client in clients {
        if let Err(e) = client.await.unwrap() {
            failures.push(format!("{e:#}"));
        }
    }
    let writes = writes.load(Ordering::SeqCst);
    eprintln!("{writes} writes and {collections} collections in one project");
    assert!(
        failures.is_empty(),
        "{} client(s) failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        server
            .log_tail(3000)
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(writes >= 50, "only {writes} writes: the storm was no storm");
    collect(&api, true).await.unwrap();
    let used = api.used("storm").await;
    assert!(used > 0);
    assert_exact(&backend, &api, "storm", used).await;
}
