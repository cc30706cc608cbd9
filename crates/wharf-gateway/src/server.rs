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
use tokio::sync::mpsc;
use tracing_actix_web::{RequestId, TracingLogger};
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
    let store = open_store(&config.storage).await?;
    let registry = Registry::new(db.pool().clone(), store, config.registry.clone());
    let maintenance = registry.spawn_maintenance();

    let (server, addrs) = build_server(config, registry, tls)?;
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
    outcome
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

/// The HTTP(S) server with every service mounted, bound but not yet running.
pub fn build_server(
    config: &Config,
    registry: Registry,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let health = web::Data::new(HealthChecks::for_registry(&registry));
    let registry = Arc::new(registry);
    let mut server = HttpServer::new(move || {
        let registry = Arc::clone(&registry);
        // Order matters: `wrap` adds outer layers, so TracingLogger runs first and
        // the request-id middleware sees its RequestId.
        App::new()
            .wrap(from_fn(request_id_and_access_log))
            .wrap(TracingLogger::default())
            .app_data(health.clone())
            .configure(health::configure)
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
