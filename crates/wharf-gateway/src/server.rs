//! `wharf serve`: open the database, migrate, build the services and serve them
//! behind one listener until SIGTERM/SIGINT.
//!
//! Shutdown order: stop accepting, give in-flight requests up to
//! `shutdown_timeout_secs` (a second signal cuts that short), stop background
//! tasks, close the pool, stop the embedded PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tracing_actix_web::{RequestId, TracingLogger};
use wharf_auth::Auth;
use wharf_projects::admission::ProjectAdmission;
use wharf_projects::audit::RegistryAudit;
use wharf_projects::http::ApiSettings;
use wharf_registry::Registry;
use wharf_replication::registries::Registries;
use wharf_store::{BlobStore, StorageConfig};

use crate::background::Background;
use crate::config::Config;
use crate::database::Database;
use crate::health::{self, HealthChecks};
use crate::metrics::{HttpMetricsLayer, Metrics};
use crate::replication::LocalWharf;
use crate::tls;

/// Response header carrying the id that tags every log line of the request.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Bytes actix may buffer per connection before writing to the socket.
const RESPONSE_WRITE_BUFFER: usize = 2 * 1024 * 1024;

/// Run `wharf serve` to completion.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    // Check TLS files before starting anything that needs stopping.
    let tls = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };

    let db = tokio::select! {
        db = Database::open(&config) => db?,
        signal = signals.next() => {
            tracing::info!(signal, "stopping before start-up finished");
            return Ok(());
        }
    };
    let result = serve_with(&config, &db, tls, &mut signals).await;
    db.close().await;
    result
}

async fn serve_with(
    config: &Config,
    db: &Database,
    tls: Option<rustls::ServerConfig>,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    tokio::select! {
        migrated = db.migrate() => migrated?,
        signal = signals.next() => {
            tracing::info!(signal, "stopping before migrations finished");
            return Ok(());
        }
    }
    let pool = db.pool().clone();
    bootstrap_accounts(&pool, config).await?;
    let store = open_store(&config.storage).await?;
    let auth = Auth::start(
        pool.clone(),
        config.auth.clone(),
        config.external_url.clone(),
    )
    .await
    .context("cannot start token authentication")?;
    // Replication's local side is this server: its listener, known once bound.
    let local = LocalWharf::new(config, auth.clone(), None);
    let registries = crate::replication::registries(&pool, config, local.clone()).await?;
    let (audit, audit_writer) = RegistryAudit::spawn(pool.clone());
    let registry = Registry::new(pool.clone(), store, config.registry.clone())
        .with_authorizer(auth.authorizer())
        .with_admission(Arc::new(ProjectAdmission::new(pool.clone())))
        .with_events(Arc::new(audit))
        // Proxy-cache projects pull through the endpoint they name.
        .with_upstream(Arc::new(wharf_replication::proxy::ProxyCache::new(
            registries.clone(),
            std::time::Duration::from_secs(config.replication.proxy_recheck_secs),
        )));
    let maintenance = registry.spawn_maintenance();
    // Background jobs (GC, retention, purges, quota repair, replication):
    // this replica's share of the queue's workers, and its scheduler.
    let metrics = config.metrics.enabled.then(|| Metrics::new(pool.clone()));
    let background = Background::start_with(
        &pool,
        &registry,
        &registries,
        config,
        config.jobs.workers,
        metrics.as_ref(),
    )
    .await?;
    // Expired sessions and stale throttling counters: small tables, so an
    // hourly sweep is plenty.
    let auth_maintenance = auth.spawn_maintenance(std::time::Duration::from_secs(3600));

    let services = Services {
        api: ApiSettings {
            external_url: config.external_url.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            storage_provider: registry.store().backend_name().to_owned(),
            robot_prefix: config.auth.robot_prefix.clone(),
            default_storage_limit: config.projects.default_storage_limit,
        },
        pool,
        registry,
        registries,
        auth,
        metrics: metrics.clone(),
    };
    let (server, addrs) = build_server(config, services, tls)?;
    local.listening_on(&addrs, config.tls_enabled());
    let metrics_server = match (&metrics, &config.metrics.listen) {
        (Some(metrics), Some(listen)) => {
            let (server, addrs) = crate::metrics::separate_server(listen, metrics.clone())?;
            for addr in &addrs {
                tracing::info!(url = %format!("http://{addr}/metrics"), "metrics listener ready");
            }
            Some(server)
        }
        _ => None,
    };
    let metrics_server = metrics_server.map(|server| (server.handle(), tokio::spawn(server)));
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    for addr in &addrs {
        tracing::info!(url = %format!("{scheme}://{addr}"), "wharf is ready");
    }
    if let Some(external) = &config.external_url {
        tracing::info!(external_url = %external, "clients reach this instance through its external URL");
    }

    let handle = server.handle();
    let mut running = tokio::spawn(server);
    let outcome = tokio::select! {
        finished = &mut running => finished.context("the HTTP server task failed")?.context("the HTTP server failed"),
        signal = signals.next() => {
            graceful_stop(&handle, signal, config.shutdown_timeout_secs, signals).await;
            running.await.context("the HTTP server task failed")?.context("the HTTP server failed")
        }
    };
    if let Some((handle, task)) = metrics_server {
        handle.stop(true).await;
        let _ = task.await;
    }
    maintenance.abort();
    auth_maintenance.abort();
    background.stop().await;
    // The server and with it every audit sink are gone: the writer drains
    // what is queued and ends.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_writer).await;
    outcome
}

/// First start: the system administrator and the public `library` project.
/// A generated administrator password is shown once, here, and never again.
async fn bootstrap_accounts(pool: &PgPool, config: &Config) -> anyhow::Result<()> {
    let generated = wharf_projects::ensure_admin(pool, config.auth.admin_password.as_deref())
        .await
        .context(
            "cannot create the administrator account (is WHARF_ADMIN_PASSWORD long and mixed \
             enough? 8-128 characters with upper and lower case letters and a digit)",
        )?;
    if let Some(password) = generated {
        tracing::warn!(
            username = wharf_projects::ADMIN,
            password = %password,
            "created the system administrator with a generated password; it is shown only \
             this once: sign in and change it, or set WHARF_ADMIN_PASSWORD before the first start"
        );
    }
    wharf_projects::ensure_library_project(pool)
        .await
        .context("cannot create the library project")?;
    Ok(())
}

async fn graceful_stop(
    handle: &ServerHandle,
    signal: &str,
    timeout_secs: u64,
    signals: &mut Signals,
) {
    tracing::info!(
        signal,
        timeout_secs,
        "shutting down: no new connections, waiting for in-flight requests"
    );
    tokio::select! {
        () = handle.stop(true) => tracing::info!("in-flight requests finished"),
        again = signals.next() => {
            tracing::warn!(signal = again, "second signal: closing open connections now");
            handle.stop(false).await;
        }
    }
}

async fn open_store(config: &StorageConfig) -> anyhow::Result<BlobStore> {
    if let StorageConfig::Filesystem { root } = config {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create the storage directory {}", root.display()))?;
    }
    let store = BlobStore::from_config(config)
        .await
        .context("cannot open blob storage")?;
    tracing::info!(backend = store.backend_name(), "blob storage ready");
    Ok(store)
}

/// Every service the HTTP server mounts.
pub struct Services {
    pub pool: PgPool,
    pub registry: Registry,
    /// Replication endpoints, for the REST API.
    pub registries: Registries,
    pub auth: Auth,
    pub api: ApiSettings,
    /// `None` when metrics are disabled.
    pub metrics: Option<Metrics>,
}

/// The HTTP(S) server with every service mounted, bound but not yet running.
pub fn build_server(
    config: &Config,
    services: Services,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let health = web::Data::new(HealthChecks::for_registry(&services.registry));
    let pool = web::Data::new(services.pool);
    let api = web::Data::new(services.api);
    let registries = web::Data::new(services.registries);
    let registry = Arc::new(services.registry);
    let auth = services.auth;
    let metrics_layer = services
        .metrics
        .as_ref()
        .map_or_else(HttpMetricsLayer::disabled, Metrics::middleware);
    let metrics_here = services
        .metrics
        .filter(|_| config.metrics.on_main_listener())
        .map(web::Data::new);
    let mut server = HttpServer::new(move || {
        let registry = Arc::clone(&registry);
        let auth = auth.clone();
        let metrics_here = metrics_here.clone();
        // Order matters: `wrap` adds outer layers, so TracingLogger runs first and
        // the request-id middleware sees its RequestId.
        App::new()
            .wrap(from_fn(request_id_and_access_log))
            .wrap(TracingLogger::default())
            // Outermost, so the time it measures is all of the server's.
            .wrap(metrics_layer.clone())
            .app_data(health.clone())
            .app_data(pool.clone())
            // The REST API's artifact writes (copy, tag, delete) go through
            // the registry, like /v2's.
            .app_data(web::Data::new((*registry).clone()))
            .app_data(api.clone())
            .app_data(registries.clone())
            // Unauthenticated probes first, so they never depend on the database
            // answering an identification query.
            .configure(health::configure)
            .configure(move |cfg| {
                if let Some(metrics) = metrics_here {
                    cfg.app_data(metrics);
                    crate::metrics::configure(cfg);
                }
            })
            .configure(crate::openapi::configure)
            .configure(move |cfg| auth.configure(cfg))
            .service(
                web::scope("/api/v2.0")
                    .wrap(from_fn(wharf_auth::identify))
                    .configure(wharf_projects::http::configure),
            )
            .configure(move |cfg| registry.configure(cfg))
            // The web console last: it registers only its own paths (`/`,
            // `/login`, `/projects/...`, `/static/...`), none of the above.
            .configure(wharf_ui::configure)
    })
    // Signals are ours (see `Signals`), so the embedded PostgreSQL stops after the server.
    .disable_signals()
    // Blob pulls arrive in 1 MiB pieces; a write buffer that holds two of them
    // means fewer, larger socket writes and no buffer reallocated per piece.
    .h1_write_buffer_size(RESPONSE_WRITE_BUFFER)
    .shutdown_timeout(config.shutdown_timeout_secs);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let listen = config.listen.as_str();
    server = match tls {
        Some(tls) => server
            .bind_rustls_0_23(listen, tls)
            .with_context(|| format!("cannot listen on {listen} (HTTPS)"))?,
        None => server
            .bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?,
    };
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// Returns the request id as `X-Request-Id` and logs one line per request.
/// Runs inside TracingLogger's span, so the log line carries `request_id` too.
async fn request_id_and_access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
    let quiet = is_probe(req.path());
    let started = Instant::now();
    // Handler errors arrive here as responses already; an Err comes only from
    // another middleware and is passed on as it is.
    let mut response = next.call(req).await?.map_into_boxed_body();
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::warn!(status, elapsed_ms, "request completed");
    } else if quiet {
        tracing::debug!(status, elapsed_ms, "request completed");
    } else {
        tracing::info!(status, elapsed_ms, "request completed");
    }
    Ok(response)
}

/// Load-balancer and Kubernetes probes, and Prometheus scrapes: logged at
/// debug so they do not drown the log.
fn is_probe(path: &str) -> bool {
    matches!(path, "/api/v2.0/ping" | "/api/v2.0/health" | "/metrics")
}

/// SIGTERM and SIGINT as a stream of names.
struct Signals {
    rx: mpsc::UnboundedReceiver<&'static str>,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    else => break,
                };
                if tx.send(name).is_err() {
                    break;
                }
            }
        });
        Ok(Self { rx })
    }

    async fn next(&mut self) -> &'static str {
        // The sender lives as long as the runtime; if it is gone, never resolve.
        match self.rx.recv().await {
            Some(name) => name,
            None => std::future::pending().await,
        }
    }
}

/// `wharf worker`: run this process's share of the background jobs (and
/// the scheduler) with no HTTP listener, until SIGTERM or SIGINT. Several
/// workers and servers share one queue.
pub async fn worker(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let db = tokio::select! {
        db = Database::open(&config) => db?,
        signal = signals.next() => {
            tracing::info!(signal, "stopping before start-up finished");
            return Ok(());
        }
    };
    let result = work(&config, &db, &mut signals).await;
    db.close().await;
    result
}

async fn work(config: &Config, db: &Database, signals: &mut Signals) -> anyhow::Result<()> {
    tokio::select! {
        migrated = db.migrate() => migrated?,
        signal = signals.next() => {
            tracing::info!(signal, "stopping before migrations finished");
            return Ok(());
        }
    }
    let pool = db.pool().clone();
    let store = open_store(&config.storage).await?;
    let (audit, audit_writer) = RegistryAudit::spawn(pool.clone());
    // The jobs' registry: the same admission (quota, immutability) and audit
    // as a server's. It serves no HTTP, so it needs no authoriser.
    let registry = Registry::new(pool.clone(), store, config.registry.clone())
        .with_admission(Arc::new(ProjectAdmission::new(pool.clone())))
        .with_events(Arc::new(audit));
    let maintenance = registry.spawn_maintenance();
    // Replication reaches the local registry through a serving instance,
    // with tokens this process signs (the key ring is shared in PostgreSQL).
    let auth = Auth::start(
        pool.clone(),
        config.auth.clone(),
        config.external_url.clone(),
    )
    .await
    .context("cannot start token signing (replication needs it)")?;
    let local = LocalWharf::new(config, auth, config.external_url.as_deref());
    let registries = crate::replication::registries(&pool, config, local).await?;
    let workers = config.jobs.workers.max(1);
    // A worker has no main listener: its job counters are served only on
    // `metrics.listen`, when one is set.
    let metrics = (config.metrics.enabled && config.metrics.listen.is_some())
        .then(|| Metrics::new(pool.clone()));
    let background = Background::start_with(
        &pool,
        &registry,
        &registries,
        config,
        workers,
        metrics.as_ref(),
    )
    .await?;
    let metrics_server = match (&metrics, &config.metrics.listen) {
        (Some(metrics), Some(listen)) => {
            let (server, addrs) = crate::metrics::separate_server(listen, metrics.clone())?;
            for addr in &addrs {
                tracing::info!(url = %format!("http://{addr}/metrics"), "metrics listener ready");
            }
            Some((server.handle(), tokio::spawn(server)))
        }
        _ => None,
    };
    tracing::info!(workers, "wharf worker is running jobs");
    let signal = signals.next().await;
    tracing::info!(signal, "stopping: running jobs get a moment to finish");
    background.stop().await;
    if let Some((handle, task)) = metrics_server {
        handle.stop(true).await;
        let _ = task.await;
    }
    maintenance.abort();
    drop(registry);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_writer).await;
    Ok(())
}

/// `wharf migrate`: open the database (starting the embedded one if needed),
/// apply migrations, close.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = Database::open(&config).await?;
    let result = db.migrate().await;
    db.close().await;
    Ok(result?)
}
