//! Prometheus metrics and the Kubernetes probes against a real `wharf serve`:
//! after pushes and pulls `/metrics` parses as the Prometheus text format
//! (checked here by a parser of our own, strict about HELP/TYPE lines,
//! sample syntax and histogram structure), labels requests by route
//! template only, counts exactly what happened, and agrees with the quota
//! API; a separate metrics port serves `/metrics` while the main port does
//! not; readiness (`/api/v2.0/health`) turns 503 when the database is stopped
//! or the storage is gone, and 200 again when they are back, while liveness
//! (`/api/v2.0/ping`) stays 200 throughout.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";
const BLOB_ROUTE: &str = "/v2/{name}/blobs/{digest}";
/// Every route template `/v2` requests may be labelled with.
const V2_TEMPLATES: [&str; 8] = [
    "/v2/",
    "/v2/_catalog",
    "/v2/{name}/tags/list",
    MANIFEST_ROUTE,
    BLOB_ROUTE,
    "/v2/{name}/blobs/uploads/",
    "/v2/{name}/blobs/uploads/{id}",
    "/v2/{name}/referrers/{digest}",
];

// ---------------------------------------------------------------------------
// The Prometheus text format, parsed strictly
// ---------------------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A whole exposition: families (name → type) and samples, in order.
#[derive(Debug)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64> {
    Ok(match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .with_context(|| format!("bad sample value {text:?}"))?,
    })
}

/// `{a="x",b="y\"z"}` (after the name) → labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').context("labels must start with {")?;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once('=').context("label without =")?;
        ensure!(is_label_name(name), "bad label name {name:?}");
        let mut chars = after
            .strip_prefix('"')
            .context("label value must be quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().context("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().context("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => bail!("bad escape \\{other}"),
                },
                (_, c) => value.push(c),
            }
        };
        ensure!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} twice"
        );
        rest = &after[1 + end + 1..];
    }
}

/// Parse and check: every sample belongs to a family declared earlier by a
/// TYPE line with a HELP line, names and labels are well formed, no series
/// appears twice, and histograms are cumulative with `+Inf` equal to `_count`.
fn parse_exposition(text: &str) -> Result<Exposition> {
    ensure!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    let mut types = HashMap::new();
    let mut helps = HashMap::new();
    let mut samples = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    ensure!(is_metric_name(name), "bad name, {}", at());
                    ensure!(!help.is_empty(), "empty HELP, {}", at());
                    ensure!(
                        helps.insert(name.to_owned(), help.to_owned()).is_none(),
                        "second HELP, {}",
                        at()
                    );
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    ensure!(is_metric_name(name), "bad name, {}", at());
                    ensure!(
                        matches!(
                            kind,
                            "counter" | "gauge" | "histogram" | "summary" | "untyped"
                        ),
                        "bad type, {}",
                        at()
                    );
                    ensure!(helps.contains_key(name), "TYPE without HELP, {}", at());
                    ensure!(
                        types.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "second TYPE, {}",
                        at()
                    );
                }
                _ => bail!("unexpected comment, {}", at()),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .with_context(|| format!("no value, {}", at()))?;
        let name = &line[..name_end];
        ensure!(is_metric_name(name), "bad name, {}", at());
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).with_context(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(
            fields
                .next()
                .with_context(|| format!("no value, {}", at()))?,
        )?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().with_context(at)?;
        }
        ensure!(fields.next().is_none(), "trailing text, {}", at());
        let family = [name, "", ""]
            .into_iter()
            .chain(["_bucket", "_sum", "_count"].map(|s| name.strip_suffix(s).unwrap_or("")))
            .find(|f| !f.is_empty() && types.contains_key(*f))
            .with_context(|| format!("sample of an undeclared family, {}", at()))?;
        if family != name {
            ensure!(
                types[family] == "histogram" || types[family] == "summary",
                "suffixed sample of a {} family, {}",
                types[family],
                at()
            );
        }
        ensure!(
            seen.insert((name.to_owned(), labels.clone())),
            "series twice, {}",
            at()
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    let exposition = Exposition { types, samples };
    exposition.check_histograms()?;
    Ok(exposition)
}

impl Exposition {
    fn check_histograms(&self) -> Result<()> {
        for (family, _) in self.types.iter().filter(|(_, t)| *t == "histogram") {
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut labels = s.labels.clone();
                let le = labels.remove("le").context("bucket without le")?;
                series
                    .entry(labels)
                    .or_default()
                    .push((parse_value(&le)?, s.value));
            }
            for (labels, buckets) in series {
                ensure!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{family}{labels:?}: buckets not ascending and cumulative"
                );
                let last = buckets.last().context("no buckets")?;
                ensure!(
                    last.0 == f64::INFINITY,
                    "{family}{labels:?}: no +Inf bucket"
                );
                let count = self
                    .value(&format!("{family}_count"), &labels_ref(&labels))
                    .context("histogram without _count")?;
                ensure!(
                    last.1 == count,
                    "{family}{labels:?}: +Inf bucket is not _count"
                );
                ensure!(
                    self.value(&format!("{family}_sum"), &labels_ref(&labels))
                        .is_some(),
                    "histogram without _sum"
                );
            }
        }
        Ok(())
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of the one series named `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .find(|s| s.labels.len() == labels.len())
            .map(|s| s.value)
    }

    /// Like [`Exposition::value`], 0 when the series does not exist (yet).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}

fn labels_ref(labels: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async fn scrape(url: &str) -> Result<Exposition> {
    let resp = reqwest::get(url).await?;
    ensure!(
        resp.status() == StatusCode::OK,
        "GET {url}: {}",
        resp.status()
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "content type {content_type:?}"
    );
    let text = resp.text().await?;
    parse_exposition(&text).with_context(|| format!("parsing:\n{text}"))
}

/// Scrape until `check` holds (state values are cached for a few seconds).
async fn scrape_until(
    url: &str,
    what: &str,
    mut check: impl FnMut(&Exposition) -> bool,
) -> Result<Exposition> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exposition = scrape(url).await?;
        if check(&exposition) {
            return Ok(exposition);
        }
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn admin_get(server: &Server, path: &str) -> Result<Value> {
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v2.0{path}", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::OK,
        "GET {path}: {}",
        resp.status()
    );
    Ok(resp.json().await?)
}

/// `GET /api/v2.0/health`: status and body.
async fn health(base: &str) -> Result<(StatusCode, Value)> {
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?
        .get(format!("{base}/api/v2.0/health"))
        .send()
        .await?;
    let status = resp.status();
    Ok((status, resp.json().await?))
}

async fn health_until(base: &str, want: StatusCode) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = health(base).await?;
        if status == want {
            return Ok(body);
        }
        ensure!(
            Instant::now() < deadline,
            "health still {status} ({body}), waiting for {want}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn component(body: &Value, name: &str) -> String {
    body["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

async fn status_of(url: &str) -> Result<StatusCode> {
    Ok(reqwest::get(url).await?.status())
}

fn wharf_only(backend: &Backend) -> bool {
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: metrics are Wharf's; the reference registry has none here");
        return false;
    }
    true
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_push_and_pulls_count_exactly_by_route_template() -> Result<()> {
    let backend = Backend::new().await;
    if !wharf_only(&backend) {
        return Ok(());
    }
    let server = backend.start().await;
    let base = server.base.as_str();
    let metrics = format!("{base}/metrics");
    server.create_project("obsv-team", false).await?;

    let oci = Oci::new();
    let mut rng = Rng::new();
    let image = random_image(&mut rng, 2, 200_000, "amd64");
    let repo = "obsv-team/app";
    oci.push_image(base, repo, "v1", &image).await?;
    let pushed: usize =
        image.blobs().map(|b| b.bytes.len()).sum::<usize>() + image.manifest.bytes.len();

    let before = scrape(&metrics).await?;
    const PULLS: usize = 3;
    let mut pulled = 0;
    for _ in 0..PULLS {
        let manifest = oci.get_manifest(base, repo, "v1").await?;
        ensure!(
            manifest.status == StatusCode::OK,
            "pull: {}",
            manifest.status
        );
        pulled += manifest.bytes.len();
    }
    for blob in image.blobs() {
        let (status, bytes) = oci.get_blob(base, repo, &blob.digest).await?;
        ensure!(status == StatusCode::OK && bytes == blob.bytes, "blob pull");
        pulled += bytes.len();
    }
    let after = scrape(&metrics).await?;

    // Exactly the pulls, under the route template.
    let requests = "wharf_http_requests_total";
    let delta =
        |labels: &[(&str, &str)]| after.count(requests, labels) - before.count(requests, labels);
    let get_ok = |route| [("route", route), ("method", "GET"), ("status", "200")];
    assert_eq!(delta(&get_ok(MANIFEST_ROUTE)), PULLS as f64);
    assert_eq!(delta(&get_ok(BLOB_ROUTE)), image.blobs().count() as f64);
    let durations = "wharf_http_request_duration_seconds_count";
    let observed = after.count(durations, &[("route", MANIFEST_ROUTE), ("method", "GET")])
        - before.count(durations, &[("route", MANIFEST_ROUTE), ("method", "GET")]);
    assert_eq!(observed, PULLS as f64);
    assert_eq!(
        after.types["wharf_http_request_duration_seconds"],
        "histogram"
    );
    assert_eq!(after.types[requests], "counter");

    // The push went through the upload routes; the project's creation
    // through the REST API's own template.
    for (route, method, status) in [
        ("/v2/{name}/blobs/uploads/", "POST", "202"),
        ("/v2/{name}/blobs/uploads/{id}", "PUT", "201"),
        (MANIFEST_ROUTE, "PUT", "201"),
        ("/api/v2.0/projects", "POST", "201"),
        ("/api/v2.0/ping", "GET", "200"),
    ] {
        let n = after.count(
            requests,
            &[("route", route), ("method", method), ("status", status)],
        );
        assert!(
            n >= 1.0,
            "no {method} {route} {status} in {:?}",
            after.samples.len()
        );
    }
    // Templates only: no repository, project, digest or upload id in a route.
    assert_eq!(
        status_of(&format!("{base}/no/such/page/12345")).await?,
        StatusCode::NOT_FOUND
    );
    let later = scrape(&metrics).await?;
    assert!(
        later.count(
            requests,
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ) >= 1.0
    );
    for sample in later.matching(requests, &[]) {
        let route = sample.labels["route"].as_str();
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "route {route:?}"
        );
        if route.starts_with("/v2") {
            assert!(V2_TEMPLATES.contains(&route), "route {route:?}");
        }
        for leak in ["obsv", "sha256", "12345", "/app"] {
            assert!(!route.contains(leak), "route {route:?} holds {leak:?}");
        }
        let longest_hex_run = route
            .split(|c: char| !c.is_ascii_hexdigit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest_hex_run < 8, "route {route:?} holds an id");
    }

    // Bytes: everything pushed came in, everything pulled went out.
    let received = after.count("wharf_http_request_body_bytes_total", &[]);
    assert!(
        received >= pushed as f64,
        "received {received} < pushed {pushed}"
    );
    let sent = after.count("wharf_http_response_body_bytes_total", &[])
        - before.count("wharf_http_response_body_bytes_total", &[]);
    assert!(sent >= pulled as f64, "sent {sent} < pulled {pulled}");

    // Storage, repositories and artifacts per project, as the quota API says.
    let project = admin_get(&server, "/projects/obsv-team").await?;
    let id = project["project_id"].as_i64().context("project_id")?;
    let quota = admin_get(
        &server,
        &format!("/quotas?reference=project&reference_id={id}"),
    )
    .await?;
    let used = quota[0]["used"]["storage"].as_i64().context("quota used")?;
    assert!(used > 0);
    let team = [("project", "obsv-team")];
    let state = scrape_until(&metrics, "the storage gauge to show the push", |e| {
        e.value("wharf_project_storage_used_bytes", &team) == Some(used as f64)
    })
    .await?;
    assert_eq!(state.value("wharf_repositories", &team), Some(1.0));
    assert_eq!(state.value("wharf_artifacts", &team), Some(1.0));
    assert_eq!(
        state.value("wharf_repositories", &[("project", "library")]),
        Some(0.0)
    );
    assert_eq!(state.value("wharf_database_up", &[]), Some(1.0));
    assert_eq!(state.types["wharf_project_storage_used_bytes"], "gauge");
    // A quota limit appears once there is one (unlimited projects have none).
    assert_eq!(
        state.value("wharf_project_storage_limit_bytes", &team),
        None
    );
    let quota_id = quota[0]["id"].as_i64().context("quota id")?;
    let limit = 64 << 20;
    let resp = reqwest::Client::new()
        .put(format!("{base}/api/v2.0/quotas/{quota_id}"))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({"hard": {"storage": limit}}))
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::OK,
        "set quota: {}",
        resp.status()
    );
    scrape_until(&metrics, "the quota limit gauge", |e| {
        e.value("wharf_project_storage_limit_bytes", &team) == Some(limit as f64)
    })
    .await?;

    // An open upload session is in progress until it is cancelled.
    let upload = oci.start_upload(base, repo).await?;
    scrape_until(&metrics, "one upload in progress", |e| {
        e.value("wharf_uploads_in_progress", &[]) == Some(1.0)
    })
    .await?;
    let cancelled = oci
        .send(oci.http.delete(format!("{base}{}", upload.location)))
        .await?;
    ensure!(
        cancelled.status() == StatusCode::NO_CONTENT,
        "cancel: {}",
        cancelled.status()
    );
    scrape_until(&metrics, "no upload in progress", |e| {
        e.value("wharf_uploads_in_progress", &[]) == Some(0.0)
    })
    .await?;

    // A garbage collection is one job attempt that succeeded, counted by
    // this process's worker; the queue depth of every kind is reported.
    let jobs = "wharf_jobs_total";
    let gc_ok = [("kind", "gc"), ("outcome", "succeeded")];
    assert_eq!(
        state.value(jobs, &gc_ok),
        Some(0.0),
        "registered kinds start at zero"
    );
    assert!(
        state
            .value("wharf_job_queue_depth", &[("kind", "gc")])
            .is_some()
    );
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v2.0/system/gc/schedule"))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .json(&json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": true}}))
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::CREATED,
        "manual gc: {}",
        resp.status()
    );
    scrape_until(&metrics, "the gc job to be counted", |e| {
        e.value(jobs, &gc_ok) == Some(1.0)
    })
    .await?;

    // The pool, replication (reserved) and the version.
    let now = scrape(&metrics).await?;
    assert_eq!(now.value("wharf_db_pool_max_connections", &[]), Some(10.0));
    let pool = now.count("wharf_db_pool_connections", &[("state", "idle")])
        + now.count("wharf_db_pool_connections", &[("state", "in_use")]);
    assert!((1.0..=10.0).contains(&pool), "pool holds {pool}");
    assert_eq!(now.value("wharf_replication_bytes_total", &[]), Some(0.0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        now.value("wharf_build_info", &[("version", version)]),
        Some(1.0)
    );

    // OpenMetrics for whoever asks for it.
    let resp = reqwest::Client::new()
        .get(&metrics)
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1",
        )
        .send()
        .await?;
    let content_type = resp.headers()["content-type"].to_str()?.to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await?;
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE wharf_http_requests counter\n"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_metrics_port_serves_metrics_and_the_main_port_does_not() -> Result<()> {
    let backend = Backend::new().await;
    if !wharf_only(&backend) {
        return Ok(());
    }
    let port = free_port();
    let server = backend
        .start_with_env(&[("WHARF_METRICS_LISTEN", format!("127.0.0.1:{port}"))])
        .await;
    let separate = format!("http://127.0.0.1:{port}");
    assert_eq!(
        status_of(&format!("{}/metrics", server.base)).await?,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&format!("{}/api/v2.0/ping", server.base)).await?,
        StatusCode::OK
    );
    // The separate port reports the main port's traffic, and serves nothing else.
    let exposition = scrape(&format!("{separate}/metrics")).await?;
    let ping = [
        ("route", "/api/v2.0/ping"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert!(exposition.count("wharf_http_requests_total", &ping) >= 2.0);
    assert_eq!(
        exposition.count("wharf_http_requests_total", &[("route", "/metrics")]),
        0.0,
        "scrapes of the separate port are not requests of the service"
    );
    for path in ["/api/v2.0/ping", "/v2/", "/api/v2.0/health", "/"] {
        assert_eq!(
            status_of(&format!("{separate}{path}")).await?,
            StatusCode::NOT_FOUND,
            "{path} on the metrics port"
        );
    }
    drop(server);

    // Disabled: no /metrics anywhere.
    let server = backend
        .start_with_env(&[("WHARF_METRICS_ENABLED", "false".to_owned())])
        .await;
    assert_eq!(
        status_of(&format!("{}/metrics", server.base)).await?,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&format!("{}/api/v2.0/ping", server.base)).await?,
        StatusCode::OK
    );
    Ok(())
}

/// A PostgreSQL cluster of this test's own, so that it can be stopped.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// `None` (skip) when the server binaries are not installed; CI has them.
    fn start() -> Option<Self> {
        let bin_dir = ["/usr/lib/postgresql"]
            .iter()
            .filter_map(|root| std::fs::read_dir(root).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .max();
        let found = |name: &str| {
            bin_dir
                .as_ref()
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
                .or_else(|| tool(name))
        };
        let (initdb, pg_ctl) = (found("initdb")?, found("pg_ctl")?);
        let dir = tempfile::Builder::new()
            .prefix("wharf-e2e-pg-")
            .tempdir()
            .expect("temp dir");
        let pg = Self {
            dir,
            pg_ctl,
            port: free_port(),
        };
        if is_root() {
            // initdb refuses to run as root: the cluster belongs to postgres.
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(pg.dir.path()))
            .expect("chown the cluster directory to postgres");
        }
        run(pg.command(&initdb).arg("-D").arg(pg.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]))
        .expect("initdb");
        pg.pg_start().expect("pg_ctl start");
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &Path) -> Command {
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn pg_start(&self) -> Result<()> {
        let options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {}",
            self.dir.path().display(),
            self.port
        );
        run(self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("pg.log"))
            .args(["-w", "-o", &options, "start"]))?;
        Ok(())
    }

    /// Stop at once, as a crash or a failover would.
    fn pg_stop(&self) -> Result<()> {
        run(self.command(&self.pg_ctl).arg("-D").arg(self.data()).args([
            "-w",
            "-m",
            "immediate",
            "stop",
        ]))?;
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_stop();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_or_the_storage_is_gone() -> Result<()> {
    let backend = Backend::new().await;
    if !wharf_only(&backend) {
        return Ok(());
    }
    let Some(pg) = PrivatePostgres::start() else {
        return Ok(());
    };
    let server = backend
        .start_with_env(&[("WHARF_DATABASE_URL", pg.url())])
        .await;
    let base = server.base.as_str();
    let ping = format!("{base}/api/v2.0/ping");
    let metrics = format!("{base}/metrics");
    let healthy = health_until(base, StatusCode::OK).await?;
    assert_eq!(healthy["status"], "healthy");

    // The database stops: not ready, but alive (a restart would not help).
    pg.pg_stop()?;
    let down = health_until(base, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(down["status"], "unhealthy");
    assert_eq!(component(&down, "database"), "unhealthy");
    assert_eq!(component(&down, "storage"), "healthy");
    assert_eq!(status_of(&ping).await?, StatusCode::OK);
    // Metrics still answer: the database is reported down, its state
    // series are left out rather than shown stale, the pool is still there.
    let blind = scrape_until(&metrics, "wharf_database_up 0", |e| {
        e.value("wharf_database_up", &[]) == Some(0.0)
    })
    .await?;
    assert!(blind.value("wharf_uploads_in_progress", &[]).is_none());
    assert!(
        blind
            .matching("wharf_project_storage_used_bytes", &[])
            .next()
            .is_none()
    );
    assert!(blind.value("wharf_db_pool_max_connections", &[]).is_some());

    // Back: ready again, with nothing restarted but PostgreSQL.
    pg.pg_start()?;
    let back = health_until(base, StatusCode::OK).await?;
    assert_eq!(component(&back, "database"), "healthy");
    scrape_until(&metrics, "wharf_database_up 1", |e| {
        e.value("wharf_database_up", &[]) == Some(1.0)
            && e.value("wharf_repositories", &[("project", "library")])
                .is_some()
    })
    .await?;

    // The storage goes away (an unmounted volume): not ready either.
    let storage = backend.data_dir().join("storage");
    let moved = backend.data_dir().join("storage.unmounted");
    std::fs::rename(&storage, &moved)?;
    let gone = health_until(base, StatusCode::SERVICE_UNAVAILABLE).await;
    std::fs::rename(&moved, &storage)?;
    let gone = gone?;
    assert_eq!(component(&gone, "storage"), "unhealthy");
    assert_eq!(component(&gone, "database"), "healthy");
    assert_eq!(status_of(&ping).await?, StatusCode::OK);
    health_until(base, StatusCode::OK).await?;
    Ok(())
}
