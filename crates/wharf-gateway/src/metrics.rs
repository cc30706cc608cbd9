//! Prometheus metrics: `GET /metrics` and what feeds it.
//!
//! Three sources, each as cheap as its question allows:
//!
//! - **Requests** are counted by [`HttpMetricsLayer`], a middleware around the
//!   whole application: per request one counter increment and one histogram
//!   observation, labelled with the route *template* (a `&'static str`, so a
//!   label set is three words and is never allocated once its series exists).
//!   `/v2` templates come from the registry's own route recogniser
//!   ([`wharf_registry::route_template`], allocation-free); other routes from
//!   actix's `match_pattern`, interned once per route. Bodies are counted as
//!   they stream, by wrapping them: nothing is buffered.
//! - **Job outcomes** are counted by the job workers of this process, through
//!   [`wharf_jobs::JobObserver`]: counters per process, as Prometheus wants
//!   (summing over replicas gives the cluster's numbers).
//! - **State** (storage per project, artifacts, repositories, open uploads,
//!   queue depth) is read from the database at scrape time, one small query
//!   each, and cached for [`CACHE_FOR`] so that a scrape storm, or several
//!   Prometheus servers, cost the database one round of queries per interval.
//!   These are the cluster's numbers: every replica reports the same values,
//!   so aggregate them with `max`, not `sum`. When the database cannot be
//!   queried the state series are left out (not reported stale) and
//!   `wharf_database_up` is 0.
//!
//! `/metrics` is unauthenticated, as Harbor's is: it names every project, so
//! keep it internal ([`MetricsConfig::listen`] puts it on a port of its own).
//! See `docs/monitoring.md` for the list of series.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use futures_util::Stream;
use pin_project_lite::pin_project;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text, text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use wharf_jobs::{AttemptOutcome, JobObserver, Jobs};

/// How long database-derived values are reused before the next scrape
/// queries again.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// How long one round of state queries may take before the scrape gives up
/// on them (and reports `wharf_database_up 0`).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `route` of a request no route matched (404s, mostly): never the raw
/// path, which would make one series per URL anybody cares to try.
pub const UNMATCHED: &str = "unmatched";

/// Distinct non-registry route templates remembered; more than the
/// application has routes, so reaching it means something is wrong and the
/// rest are counted as [`UNMATCHED`] rather than growing without bound.
const MAX_ROUTES: usize = 512;

/// Request durations, in seconds: from half a millisecond (a cached
/// manifest) to two minutes (a large blob upload).
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

/// `Content-Type` of the OpenMetrics text format.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` and count requests. Off: neither (no middleware at
    /// all on the request path).
    pub enabled: bool,
    /// `host:port` of a listener of its own for `/metrics` (plain HTTP, that
    /// path only); the main listener then does not serve it. Unset: `/metrics`
    /// is on the main listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

impl MetricsConfig {
    /// Checks serde cannot express; `main_listen` is the main listener's
    /// address.
    pub fn validate(&self, main_listen: &str) -> Result<(), String> {
        match self.listen.as_deref().map(str::trim) {
            Some("") => Err(
                "`metrics.listen` is empty (leave it unset to serve /metrics on the main listener)"
                    .into(),
            ),
            Some(listen) if listen == main_listen.trim() => Err(format!(
                "`metrics.listen` {listen:?} is the main listener's address: leave it unset to \
                 serve /metrics there, or give it a port of its own"
            )),
            _ => Ok(()),
        }
    }

    /// Whether `/metrics` is on the main listener.
    pub fn on_main_listener(&self) -> bool {
        self.enabled && self.listen.is_none()
    }
}

/// Every metric of this process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http: Arc<HttpMetrics>,
    jobs: Family<JobLabels, Counter>,
    replication_bytes: Counter,
    state: Arc<StateCollector>,
}

impl Metrics {
    /// The metrics of a Wharf process whose database is `pool`. Job metrics
    /// follow once [`Metrics::watch_jobs`] is given the job system.
    pub fn new(pool: PgPool) -> Self {
        let mut registry = Registry::with_prefix("wharf");
        let http = Arc::new(HttpMetrics::default());
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival until its response head is ready (a body still \
             streaming is not included), by route template and method",
            Unit::Seconds,
            http.duration.clone(),
        );
        registry.register_with_unit(
            "http_request_body",
            "Request body bytes received, counted as they arrive",
            Unit::Bytes,
            http.request_bytes.clone(),
        );
        registry.register_with_unit(
            "http_response_body",
            "Response body bytes sent, counted as they leave",
            Unit::Bytes,
            http.response_bytes.clone(),
        );

        let job_outcomes = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Job attempts this process's workers ran to an end, by kind and outcome \
             (succeeded, retrying, failed)",
            job_outcomes.clone(),
        );

        let replication_bytes = Counter::default();
        registry.register_with_unit(
            "replication",
            "Bytes copied by replication (to or from remote registries)",
            Unit::Bytes,
            replication_bytes.clone(),
        );
        registry.register(
            "build",
            "The running Wharf's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );

        let state = Arc::new(StateCollector::new(pool));
        registry.register_collector(Box::new(state.clone()));
        Self {
            inner: Arc::new(Inner {
                registry,
                http,
                jobs: job_outcomes,
                replication_bytes,
                state,
            }),
        }
    }

    /// The request-counting middleware. Wrap the whole `App` in it, outside
    /// every other middleware, so that the time it measures is the whole of
    /// the server's.
    pub fn middleware(&self) -> HttpMetricsLayer {
        HttpMetricsLayer(Some(self.inner.http.clone()))
    }

    /// Count the outcomes of `jobs`' workers and report its queue depth.
    /// Call once every kind is registered and before the workers start
    /// (see [`crate::background::Background::start_with`]); a second call
    /// changes nothing.
    pub fn watch_jobs(&self, jobs: &mut Jobs) {
        if self.inner.state.jobs.set(jobs.clone()).is_err() {
            return;
        }
        // Every registered kind starts at zero, so a rate or an alert has a
        // series to work with before the first job.
        for kind in jobs.kinds() {
            for outcome in AttemptOutcome::ALL {
                // Creating the series is the point; the guard is not needed.
                drop(self.inner.jobs.get_or_create(&JobLabels {
                    kind,
                    outcome: outcome.as_str(),
                }));
            }
        }
        jobs.set_observer(Arc::new(JobOutcomes(self.inner.jobs.clone())));
    }

    /// The counter replication adds the bytes it copies to.
    pub fn replication_bytes(&self) -> Counter {
        self.inner.replication_bytes.clone()
    }

    /// Every metric as text: OpenMetrics when `openmetrics`, otherwise the
    /// Prometheus text format 0.0.4. Returns the content type and the body.
    pub async fn render(&self, openmetrics: bool) -> (&'static str, String) {
        self.inner.state.refresh().await;
        let mut body = String::with_capacity(16 * 1024);
        let encoded = if openmetrics {
            text::encode(&mut body, &self.inner.registry).map(|()| OPENMETRICS_CONTENT_TYPE)
        } else {
            prometheus_text::encode(&mut body, &self.inner.registry)
                .map(|()| prometheus_text::CONTENT_TYPE)
        };
        match encoded {
            Ok(content_type) => (content_type, body),
            // Writing to a String cannot fail; an encoder error would be a
            // bug in a label value, and a partial exposition is not valid.
            Err(_) => {
                tracing::error!("metrics could not be encoded");
                (prometheus_text::CONTENT_TYPE, String::new())
            }
        }
    }
}

/// Mount `GET /metrics`. Needs `web::Data<Metrics>` in the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics_endpoint));
}

async fn metrics_endpoint(req: HttpRequest, metrics: web::Data<Metrics>) -> HttpResponse {
    // Prometheus offers OpenMetrics first; curl and older scrapers get the
    // classic text format.
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let (content_type, body) = metrics.render(openmetrics).await;
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The separate `/metrics` listener ([`MetricsConfig::listen`]): plain HTTP,
/// one worker thread, `/metrics` and nothing else. Bound, not yet running.
pub fn separate_server(
    listen: &str,
    metrics: Metrics,
) -> anyhow::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(metrics.clone())
            .configure(configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen} (metrics.listen)"))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The request metrics the middleware updates.
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: DurationFamily,
    request_bytes: Counter,
    response_bytes: Counter,
    routes: RouteNames,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            request_bytes: Counter::default(),
            response_bytes: Counter::default(),
            routes: RouteNames::default(),
        }
    }
}

impl HttpMetrics {
    fn observe(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }
}

/// actix's route patterns as `&'static str`: each distinct pattern is
/// leaked once (there are as many as the application has routes).
#[derive(Default)]
struct RouteNames(RwLock<HashMap<String, &'static str>>);

impl RouteNames {
    /// The template of the route that served `req`, or [`UNMATCHED`].
    fn of(&self, req: &HttpRequest) -> &'static str {
        let Some(pattern) = req.match_pattern() else {
            return UNMATCHED;
        };
        if let Some(&name) = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pattern)
        {
            return name;
        }
        let mut names = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&name) = names.get(&pattern) {
            return name;
        }
        if names.len() >= MAX_ROUTES {
            return UNMATCHED;
        }
        let name: &'static str = Box::leak(pattern.clone().into_boxed_str());
        names.insert(pattern, name);
        name
    }
}

/// The route template of a `/v2` path, decided before the request runs
/// (`None` for other paths, whose template actix knows once it routed them).
fn registry_route(path: &str) -> Option<&'static str> {
    if path == "/v2" || path.starts_with("/v2/") {
        Some(wharf_registry::route_template(path).unwrap_or(UNMATCHED))
    } else {
        None
    }
}

/// Methods as label values; anything unusual is `other` (one series, however
/// many invented methods a client sends).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The middleware [`Metrics::middleware`] gives; [`HttpMetricsLayer::disabled`]
/// passes everything through untouched.
#[derive(Clone)]
pub struct HttpMetricsLayer(Option<Arc<HttpMetrics>>);

impl HttpMetricsLayer {
    /// A layer that counts nothing (metrics disabled).
    pub fn disabled() -> Self {
        Self(None)
    }
}

impl<S, B> Transform<S, ServiceRequest> for HttpMetricsLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<CountedBody<B>>;
    type Error = actix_web::Error;
    type Transform = HttpMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HttpMetricsService {
            service,
            metrics: self.0.clone(),
        }))
    }
}

/// The service [`HttpMetricsLayer`] wraps around the application.
pub struct HttpMetricsService<S> {
    service: S,
    metrics: Option<Arc<HttpMetrics>>,
}

impl<S, B> Service<ServiceRequest> for HttpMetricsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<CountedBody<B>>;
    type Error = actix_web::Error;
    type Future = Recording<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let Some(metrics) = &self.metrics else {
            return Recording {
                future: self.service.call(req),
                started: None,
            };
        };
        let started = Started {
            at: Instant::now(),
            method: method_label(req.method()),
            route: registry_route(req.path()),
            metrics: metrics.clone(),
        };
        // Requests without a body (every GET) have no payload to wrap.
        match req.take_payload() {
            Payload::None => {}
            payload => req.set_payload(Payload::Stream {
                payload: Box::pin(CountedPayload {
                    payload,
                    counter: metrics.request_bytes.clone(),
                }),
            }),
        }
        Recording {
            future: self.service.call(req),
            started: Some(started),
        }
    }
}

struct Started {
    at: Instant,
    method: &'static str,
    route: Option<&'static str>,
    metrics: Arc<HttpMetrics>,
}

pin_project! {
    /// The response future of [`HttpMetricsService`]: records the request
    /// when the response head is ready.
    pub struct Recording<F> {
        #[pin]
        future: F,
        started: Option<Started>,
    }
}

impl<F, B> Future for Recording<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<CountedBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.future.poll(cx));
        let Some(started) = this.started.take() else {
            return Poll::Ready(
                outcome.map(|res| res.map_body(|_, body| CountedBody::new(body, None))),
            );
        };
        let metrics = started.metrics;
        let took = started.at.elapsed();
        Poll::Ready(match outcome {
            Ok(res) => {
                let route = started
                    .route
                    .unwrap_or_else(|| metrics.routes.of(res.request()));
                metrics.observe(route, started.method, res.status().as_u16(), took);
                Ok(res.map_body(|_, body| CountedBody::new(body, Some(metrics))))
            }
            Err(error) => {
                // Only another middleware fails this way; the server turns
                // the error into this response.
                let status = error.as_response_error().status_code().as_u16();
                metrics.observe(
                    started.route.unwrap_or(UNMATCHED),
                    started.method,
                    status,
                    took,
                );
                Err(error)
            }
        })
    }
}

pin_project! {
    /// A response body that adds the bytes it yields to a counter.
    pub struct CountedBody<B> {
        #[pin]
        body: B,
        // The whole set rather than a clone of its counter: the request's
        // reference moves here, with no second reference count to take.
        metrics: Option<Arc<HttpMetrics>>,
    }
}

impl<B> CountedBody<B> {
    fn new(body: B, metrics: Option<Arc<HttpMetrics>>) -> Self {
        Self { body, metrics }
    }
}

impl<B: MessageBody> MessageBody for CountedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_next(cx);
        if let (Some(metrics), Poll::Ready(Some(Ok(chunk)))) = (this.metrics.as_ref(), &polled) {
            metrics.response_bytes.inc_by(chunk.len() as u64);
        }
        polled
    }
}

pin_project! {
    /// A request payload that adds the bytes it yields to a counter.
    struct CountedPayload {
        #[pin]
        payload: Payload,
        counter: Counter,
    }
}

impl Stream for CountedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = this.payload.poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            this.counter.inc_by(chunk.len() as u64);
        }
        polled
    }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    outcome: &'static str,
}

struct JobOutcomes(Family<JobLabels, Counter>);

impl JobObserver for JobOutcomes {
    fn attempt_finished(&self, kind: &'static str, outcome: AttemptOutcome) {
        self.0
            .get_or_create(&JobLabels {
                kind,
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

// ---------------------------------------------------------------------------
// State read at scrape time
// ---------------------------------------------------------------------------

/// What the database said at one moment.
#[derive(Debug, Default)]
struct DatabaseState {
    storage: Vec<(String, i64)>,
    /// Only the projects with a limit.
    limits: Vec<(String, i64)>,
    repositories: Vec<(String, i64)>,
    artifacts: Vec<(String, i64)>,
    uploads: i64,
    /// `None` until the job system is attached.
    queue: Option<Vec<(String, i64)>>,
}

#[derive(Debug)]
struct Snapshot {
    taken: Instant,
    /// `None` when the queries failed.
    database: Option<DatabaseState>,
}

/// Quota usage and limit (-1: none) of every live project: what quotas are
/// enforced against.
const STORAGE_SQL: &str = "SELECT p.name, q.used, p.storage_limit FROM project_quotas q \
     JOIN projects p ON p.id = q.project_id WHERE NOT p.deleted ORDER BY p.name";

/// Repositories of every live project (0 for an empty one).
const REPOSITORIES_SQL: &str = "SELECT p.name, count(r.id) FROM projects p \
     LEFT JOIN repositories r ON r.project = p.name \
     WHERE NOT p.deleted GROUP BY p.name ORDER BY p.name";

/// Every stored manifest of every live project: images, indexes and their
/// children, signatures and other accessories alike (one count, no per-row
/// classification, so it stays cheap).
const ARTIFACTS_SQL: &str = "SELECT p.name, count(m.id) FROM projects p \
     LEFT JOIN repositories r ON r.project = p.name \
     LEFT JOIN manifests m ON m.repository_id = r.id \
     WHERE NOT p.deleted GROUP BY p.name ORDER BY p.name";

/// Upload sessions anywhere in the cluster, from their start until they are
/// finished, cancelled or purged as abandoned. Counted in the table rather
/// than in the process because a session outlives its requests: its chunks
/// may arrive at different replicas, and it survives a restart.
const UPLOADS_SQL: &str = "SELECT count(*) FROM uploads";

/// Encodes the database-derived gauges (from the last [`Snapshot`]) and the
/// connection pool's (read live, no query needed).
struct StateCollector {
    pool: PgPool,
    /// Set by [`Metrics::watch_jobs`]; no queue depth until then.
    jobs: OnceLock<Jobs>,
    snapshot: Mutex<Arc<Snapshot>>,
    /// One refresh at a time; scrapes that arrive meanwhile wait for it and
    /// use its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl StateCollector {
    fn new(pool: PgPool) -> Self {
        // Old enough to be refreshed by the first scrape.
        let never = Snapshot {
            taken: Instant::now() - CACHE_FOR * 2,
            database: None,
        };
        Self {
            pool,
            jobs: OnceLock::new(),
            snapshot: Mutex::new(Arc::new(never)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Query the database unless the snapshot is younger than [`CACHE_FOR`].
    /// A failure is cached like a success: a database in trouble gets no more
    /// queries from scrapes than a healthy one.
    async fn refresh(&self) {
        let fresh = |s: &Snapshot| s.taken.elapsed() < CACHE_FOR;
        if fresh(&self.current()) {
            return;
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if fresh(&self.current()) {
            return;
        }
        let database = match tokio::time::timeout(COLLECT_TIMEOUT, self.query()).await {
            Ok(Ok(state)) => Some(state),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "metrics: cannot read state from the database");
                None
            }
            Err(_) => {
                tracing::warn!(
                    timeout_secs = COLLECT_TIMEOUT.as_secs(),
                    "metrics: the database did not answer in time"
                );
                None
            }
        };
        let snapshot = Arc::new(Snapshot {
            taken: Instant::now(),
            database,
        });
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    async fn query(&self) -> anyhow::Result<DatabaseState> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("acquiring a connection")?;
        let per_project = |sql: &'static str| sqlx::query_as::<_, (String, i64)>(sql);
        let quotas: Vec<(String, i64, i64)> =
            sqlx::query_as(STORAGE_SQL).fetch_all(&mut *conn).await?;
        let limits = quotas
            .iter()
            .filter(|(_, _, limit)| *limit >= 0)
            .map(|(name, _, limit)| (name.clone(), *limit))
            .collect();
        let storage = quotas
            .into_iter()
            .map(|(name, used, _)| (name, used))
            .collect();
        let repositories = per_project(REPOSITORIES_SQL).fetch_all(&mut *conn).await?;
        let artifacts = per_project(ARTIFACTS_SQL).fetch_all(&mut *conn).await?;
        let uploads: i64 = sqlx::query_scalar(UPLOADS_SQL)
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        let queue = match self.jobs.get() {
            Some(jobs) => {
                // Registered kinds are always present, at zero when idle.
                let mut queue: BTreeMap<String, i64> = jobs
                    .kinds()
                    .into_iter()
                    .map(|k| (k.to_owned(), 0))
                    .collect();
                queue.extend(jobs.queue_depth().await.context("reading the job queue")?);
                Some(queue.into_iter().collect())
            }
            None => None,
        };
        Ok(DatabaseState {
            storage,
            limits,
            repositories,
            artifacts,
            uploads,
            queue,
        })
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.current();
        gauge(
            &mut encoder,
            "database_up",
            "1 when the last scrape-time collection could query the database, 0 when it could not",
            None,
            i64::from(snapshot.database.is_some()),
        )?;
        if let Some(db) = &snapshot.database {
            per_label(
                &mut encoder,
                "project_storage_used",
                "Storage a project uses, as its quota counts it (each blob once per project)",
                Some(&Unit::Bytes),
                "project",
                &db.storage,
            )?;
            per_label(
                &mut encoder,
                "project_storage_limit",
                "A project's storage quota, for the projects that have one",
                Some(&Unit::Bytes),
                "project",
                &db.limits,
            )?;
            per_label(
                &mut encoder,
                "repositories",
                "Repositories, by project",
                None,
                "project",
                &db.repositories,
            )?;
            per_label(
                &mut encoder,
                "artifacts",
                "Manifests stored (images, indexes, their children and accessories), by project",
                None,
                "project",
                &db.artifacts,
            )?;
            gauge(
                &mut encoder,
                "uploads_in_progress",
                "Blob upload sessions started and not yet finished, cancelled or purged, in the \
                 whole cluster",
                None,
                db.uploads,
            )?;
            if let Some(queue) = &db.queue {
                per_label(
                    &mut encoder,
                    "job_queue_depth",
                    "Jobs waiting or running, by kind, in the whole cluster",
                    None,
                    "kind",
                    queue,
                )?;
            }
        }

        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        let connections = [("idle", idle), ("in_use", (size - idle).max(0))];
        let mut family = encoder.encode_descriptor(
            "db_pool_connections",
            "Connections this process's database pool holds, by state (idle or in_use).",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in connections {
            ConstGauge::new(n).encode(family.encode_family(&[("state", state)])?)?;
        }
        gauge(
            &mut encoder,
            "db_pool_max_connections",
            "Connections this process's database pool may open (database.max_connections)",
            None,
            i64::from(self.pool.options().get_max_connections()),
        )
    }
}

/// One unlabelled gauge. `help` without the final full stop.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let help = format!("{help}.");
    let metric = encoder.encode_descriptor(name, &help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// A gauge with one label, one series per `(label value, value)`.
fn per_label(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &'static str,
    values: &[(String, i64)],
) -> Result<(), std::fmt::Error> {
    let mut described = String::with_capacity(help.len() + 1);
    let _ = write!(described, "{help}.");
    let mut family = encoder.encode_descriptor(name, &described, unit, MetricType::Gauge)?;
    for (value_label, value) in values {
        let labels = [(label, value_label.as_str())];
        ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_paths_get_the_registry_template_and_others_wait_for_routing() {
        assert_eq!(
            registry_route("/v2/team/app/blobs/sha256:abc"),
            Some("/v2/{name}/blobs/{digest}")
        );
        assert_eq!(registry_route("/v2/"), Some("/v2/"));
        assert_eq!(registry_route("/v2"), Some("/v2/"));
        assert_eq!(registry_route("/v2/team/app/what"), Some(UNMATCHED));
        assert_eq!(registry_route("/v2x"), None);
        assert_eq!(registry_route("/api/v2.0/projects/team"), None);
    }

    #[test]
    fn invented_methods_share_one_label() {
        let m = |s: &str| actix_web::http::Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(method_label(&m("PATCH")), "PATCH");
        assert_eq!(method_label(&m("BREW")), "other");
        assert_eq!(method_label(&m("get")), "other");
    }

    #[test]
    fn the_metrics_port_may_not_be_the_main_one() {
        let on = |listen: Option<&str>| MetricsConfig {
            enabled: true,
            listen: listen.map(str::to_owned),
        };
        assert!(on(None).validate("0.0.0.0:8080").is_ok());
        assert!(on(Some("0.0.0.0:9090")).validate("0.0.0.0:8080").is_ok());
        assert!(on(Some("0.0.0.0:8080")).validate("0.0.0.0:8080").is_err());
        assert!(on(Some(" ")).validate("0.0.0.0:8080").is_err());
        assert!(on(None).on_main_listener());
        assert!(!on(Some("0.0.0.0:9090")).on_main_listener());
        let off = MetricsConfig {
            enabled: false,
            listen: None,
        };
        assert!(!off.on_main_listener());
    }

    /// The middleware through a real actix app: templates, not paths; bytes
    /// both ways; the disabled layer counts nothing.
    #[actix_web::test]
    async fn requests_are_counted_by_template_with_their_bytes() {
        use actix_web::{App, test};

        let http = Arc::new(HttpMetrics::default());
        let app = test::init_service(
            App::new()
                .wrap(HttpMetricsLayer(Some(http.clone())))
                .route(
                    "/api/v2.0/projects/{project_name_or_id}",
                    web::put().to(|body: Bytes| async move { HttpResponse::Ok().body(body) }),
                )
                .route(
                    "/v2/{rest:.+}",
                    web::get().to(|| async { HttpResponse::Ok().body("manifest") }),
                ),
        )
        .await;
        for project in ["alpha", "beta"] {
            let req = test::TestRequest::put()
                .uri(&format!("/api/v2.0/projects/{project}"))
                .set_payload("0123456789")
                .to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(test::read_body(res).await, "0123456789");
        }
        let req = test::TestRequest::get()
            .uri("/v2/team/app/manifests/sha256:0000")
            .to_request();
        assert_eq!(
            test::read_body(test::call_service(&app, req).await).await,
            "manifest"
        );
        let req = test::TestRequest::get().uri("/nowhere/at/all").to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 404);

        let count = |route, method, status| {
            http.requests
                .get(&RequestLabels {
                    route,
                    method,
                    status,
                })
                .map_or(0, |c| c.get())
        };
        assert_eq!(
            count("/api/v2.0/projects/{project_name_or_id}", "PUT", 200),
            2
        );
        assert_eq!(count("/v2/{name}/manifests/{reference}", "GET", 200), 1);
        assert_eq!(count(UNMATCHED, "GET", 404), 1);
        assert_eq!(http.request_bytes.get(), 20);
        assert!(
            http.response_bytes.get() >= 28,
            "{}",
            http.response_bytes.get()
        );
        let mut registry = Registry::default();
        registry.register("d", "d", http.duration.clone());
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "d_count{route=\"/api/v2.0/projects/{project_name_or_id}\",method=\"PUT\"} 2\n"
            ),
            "{text}"
        );

        let passthrough = test::init_service(
            App::new()
                .wrap(HttpMetricsLayer::disabled())
                .route("/x", web::get().to(|| async { "x" })),
        )
        .await;
        let res = test::call_service(
            &passthrough,
            test::TestRequest::get().uri("/x").to_request(),
        )
        .await;
        assert_eq!(test::read_body(res).await, "x");
    }
}
