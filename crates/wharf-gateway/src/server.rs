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
use wharf_store::{BlobStore, StorageConfig};

use crate::config::Config;
use crate::database::Database;
use crate::health::{self, HealthChecks};
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
    let (audit, audit_writer) = RegistryAudit::spawn(pool.clone());
    let registry = Registry::new(pool.clone(), store, config.registry.clone())
        .with_authorizer(auth.authorizer())
        .with_admission(Arc::new(ProjectAdmission::new(pool.clone())))
        .with_events(Arc::new(audit));
    let maintenance = registry.spawn_maintenance();
    // Background jobs (GC, purges, quota repair): this replica's share of
    // the queue's workers, and its scheduler.
    let mut jobs = wharf_jobs::Jobs::start(pool.clone())
        .await
        .context("cannot start the job queue")?;
    wharf_projects::jobs::register_jobs(&mut jobs);
    jobs.register(
        wharf_projects::jobs::gc::KIND,
        Arc::new(wharf_projects::jobs::gc::GcJob::new(registry.clone())),
    );
    jobs.register(
        wharf_projects::retention::KIND,
        Arc::new(wharf_projects::retention::RetentionJob::new(
            registry.clone(),
        )),
    );
    let (stop_jobs, jobs_stopping) = tokio::sync::watch::channel(false);
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let job_worker = (config.jobs.workers > 0)
        .then(|| jobs.run_worker(config.jobs.workers, stopping(jobs_stopping.clone())));
    let job_scheduler = jobs.run_scheduler(stopping(jobs_stopping));
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
        auth,
    };
    let (server, addrs) = build_server(config, services, tls)?;
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
    maintenance.abort();
    auth_maintenance.abort();
    // Running jobs get the worker's grace period, then go back to the queue
    // for another replica (or the next start).
    let _ = stop_jobs.send(true);
    if let Some(worker) = job_worker {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), worker).await;
    }
    job_scheduler.abort();
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
    pub auth: Auth,
    pub api: ApiSettings,
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
    let registry = Arc::new(services.registry);
    let auth = services.auth;
    let mut server = HttpServer::new(move || {
        let registry = Arc::clone(&registry);
        let auth = auth.clone();
        // Order matters: `wrap` adds outer layers, so TracingLogger runs first and
        // the request-id middleware sees its RequestId.
        App::new()
            .wrap(from_fn(request_id_and_access_log))
            .wrap(TracingLogger::default())
            .app_data(health.clone())
            .app_data(pool.clone())
            // The REST API's artifact writes (copy, tag, delete) go through
            // the registry, like /v2's.
            .app_data(web::Data::new((*registry).clone()))
            .app_data(api.clone())
            // Unauthenticated probes first, so they never depend on the database
            // answering an identification query.
            .configure(health::configure)
            .configure(crate::openapi::configure)
            .configure(move |cfg| auth.configure(cfg))
            .service(
                web::scope("/api/v2.0")
                    .wrap(from_fn(wharf_auth::identify))
                    .configure(wharf_projects::http::configure),
            )
            .configure(move |cfg| registry.configure(cfg))
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

/// Load-balancer and Kubernetes probes: logged at debug so they do not drown the log.
fn is_probe(path: &str) -> bool {
    matches!(path, "/api/v2.0/ping" | "/api/v2.0/health")
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

/// `wharf migrate`: open the database (starting the embedded one if needed),
/// apply migrations, close.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = Database::open(&config).await?;
    let result = db.migrate().await;
    db.close().await;
    Ok(result?)
}
