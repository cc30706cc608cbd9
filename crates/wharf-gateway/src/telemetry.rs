//! Logging: `tracing` to stderr, as text or JSON lines.
//!
//! Each HTTP request runs inside the root span of `tracing_actix_web::TracingLogger`,
//! so every line logged while serving it carries that span's `request_id` (the
//! same value is returned to the client in `X-Request-Id`, see [`crate::server`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log level/filter {filter:?}: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Build the filter for `log.level`. Noisy dependencies are held at `warn` unless
/// the filter names them, and the per-request span stays enabled even at `warn` so
/// warnings still carry their `request_id`.
pub fn filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let mut directives = level.trim().to_owned();
    let defaults = [
        ("sqlx", "warn"),
        ("h2", "warn"),
        ("hyper", "warn"),
        ("rustls", "warn"),
        ("aws_config", "warn"),
        ("object_store", "warn"),
        ("tracing_actix_web", "info"),
    ];
    for (target, level) in defaults {
        if !directives.contains(target) {
            directives.push_str(&format!(",{target}={level}"));
        }
    }
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|source| TelemetryError::Filter {
            filter: level.to_owned(),
            source,
        })
}

/// Install the global subscriber described by `[log]`. Call once, early.
pub fn init(config: &LogConfig) -> Result<(), TelemetryError> {
    let filter = filter(&config.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in files or collectors.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_span_events(FmtSpan::NONE);
    let result = match config.format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The whole span list, not just the current span: a handler's own span
            // would otherwise hide the request span and its request_id.
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_accept_levels_and_directives() {
        assert!(filter("info").is_ok());
        assert!(filter("warn,wharf_registry=debug").is_ok());
        assert!(
            filter("sqlx=debug")
                .unwrap()
                .to_string()
                .contains("sqlx=debug")
        );
        assert!(filter("info,=nonsense[").is_err());
    }
}
