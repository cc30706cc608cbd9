//! The `wharf` command line. Flags are the last configuration layer; see
//! [`crate::config`] for the others.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

/// Wharf: an OCI/Docker container registry in one binary.
///
/// Configuration comes from built-in defaults, then the TOML file given by
/// --config (or WHARF_CONFIG), then WHARF_* environment variables, then the
/// flags below; later layers win. `wharf config` prints the result.
/// Every key is documented in docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(
        long,
        short = 'c',
        env = "WHARF_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// such as "info,wharf_registry=debug" [config: log.level].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log line format [config: log.format].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry: apply database migrations, then serve HTTP(S) until
    /// SIGTERM or SIGINT.
    ///
    /// Without a database URL (DATABASE_URL, WHARF_DATABASE_URL or database.url)
    /// Wharf starts a private PostgreSQL cluster under <data-dir>/postgres using the
    /// PostgreSQL server binaries installed on this machine, and stops it on exit.
    /// Once ready, GET /api/v2.0/ping answers 200 "Pong"; GET /api/v2.0/health
    /// reports the database and storage.
    Serve(ServeArgs),

    /// Run background jobs only (garbage collection, retention, purges,
    /// quota repairs, ...), with no HTTP listener, until SIGTERM or SIGINT.
    ///
    /// `wharf serve` runs jobs too (`jobs.workers`, default 2); run workers
    /// of their own to keep that work off the serving replicas (then set
    /// `jobs.workers = 0` on those). Any number of servers and workers
    /// share the queue in PostgreSQL; each job runs once.
    Worker(DataDirArgs),

    /// Apply pending database migrations and exit.
    ///
    /// `wharf serve` does this on start too; run it on its own to migrate before
    /// rolling out new replicas. Safe to run from several places at once:
    /// migrations take a PostgreSQL advisory lock.
    Migrate(DataDirArgs),

    /// Run one garbage collection now and print what it deleted; exit 0 on
    /// success, 1 on failure.
    ///
    /// Works directly on the configured database and storage: no server is
    /// needed, and servers may keep serving meanwhile (pushes are never
    /// broken by it; see docs/gc.md). Refuses to start while another
    /// collection runs. Blobs, links and untagged artifacts recorded within
    /// registry.gc_grace_period_secs are left alone.
    Gc(GcArgs),

    /// Check that the database and the blob store agree, as after a restore;
    /// exit 0 when they do, 1 when they do not.
    ///
    /// Every blob record must have its bytes in the store, of the recorded
    /// size; every blob a manifest references must have a record, and every
    /// child of an index must be in its repository. Bytes without a record
    /// are listed too, but do not fail the check: garbage collection removes
    /// them. Reads only; safe while servers serve. See
    /// docs/backup-and-restore.md.
    Check(CheckArgs),

    /// Ask a running Wharf whether it is healthy: GET /api/v2.0/health (on
    /// the configured listen address, unless --url says otherwise) and exit
    /// 0 on a 2xx answer, 1 otherwise. For container health checks.
    Probe(ProbeArgs),

    /// Print the effective configuration as TOML, secrets redacted, and exit.
    ///
    /// Accepts the same flags as `serve`, so it shows exactly what `wharf serve`
    /// with those flags would use. The output is itself a valid configuration file.
    Config(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on, host:port [default: 127.0.0.1:8080] [config: listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Directory for local state: filesystem storage and the embedded PostgreSQL
    /// [default: ./data] [config: data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// URL clients use to reach this instance, if it differs from --listen
    /// [config: external_url].
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Directory for local state: filesystem storage and the embedded
    /// PostgreSQL used when no database URL is configured [default: ./data]
    /// [config: data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also delete artifacts without tags (not children of an index, not
    /// accessories of an artifact that stays).
    #[arg(long)]
    pub delete_untagged: bool,

    /// Parallel blob deletions, 1 to 5.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub workers: u8,

    /// Print the report as JSON on stdout (the log goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// Directory for local state: filesystem storage and the embedded
    /// PostgreSQL [default: ./data] [config: data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl GcArgs {
    /// The collection these flags ask for.
    pub fn options(&self) -> wharf_registry::gc::GcOptions {
        wharf_registry::gc::GcOptions {
            dry_run: self.dry_run,
            delete_untagged: self.delete_untagged,
            workers: usize::from(self.workers),
            ..wharf_registry::gc::GcOptions::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Also read every blob back and check that it hashes to its digest
    /// (reads the whole store).
    #[arg(long)]
    pub verify_digests: bool,

    /// Print the report as JSON on stdout (the findings go to stderr).
    #[arg(long)]
    pub json: bool,

    /// Directory for local state: filesystem storage and the embedded
    /// PostgreSQL [default: ./data] [config: data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl CheckArgs {
    /// The check these flags ask for.
    pub fn options(&self) -> crate::check::CheckOptions {
        crate::check::CheckOptions {
            verify_digests: self.verify_digests,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// URL to GET [default: /api/v2.0/health on the configured listen
    /// address, 0.0.0.0 meaning 127.0.0.1].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Seconds to wait for the connection and for the answer.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl Cli {
    /// The command-line layer of the configuration.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = Overrides {
            log_level: self.log_level.clone(),
            log_format: self.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
            ..Overrides::default()
        };
        match &self.command {
            Command::Serve(args) | Command::Config(args) => {
                overrides.listen = args.listen.clone();
                overrides.data_dir = args.data_dir.clone();
                overrides.external_url = args.external_url.clone();
            }
            Command::Migrate(args) | Command::Worker(args) => {
                overrides.data_dir = args.data_dir.clone()
            }
            Command::Gc(args) => overrides.data_dir = args.data_dir.clone(),
            Command::Check(args) => overrides.data_dir = args.data_dir.clone(),
            Command::Probe(_) => {}
        }
        overrides
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_after_the_subcommand_become_overrides() {
        let cli = Cli::parse_from([
            "wharf",
            "serve",
            "--listen",
            "0.0.0.0:9",
            "--data-dir",
            "/d",
            "--log-format",
            "json",
        ]);
        let o = cli.overrides();
        assert_eq!(o.listen.as_deref(), Some("0.0.0.0:9"));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(o.log_format, Some(LogFormat::Json));
    }
}
