//! `wharf`: parse the command line, load the configuration, set up logging and
//! dispatch. Everything else lives in the library (`wharf_gateway`).

use std::process::ExitCode;

use clap::Parser;
use wharf_gateway::cli::{Cli, Command};
use wharf_gateway::config::Config;
use wharf_gateway::{server, telemetry};

fn main() -> ExitCode {
    // Two rustls providers are linked (aws-lc-rs and ring via dependencies); pick one
    // before anything builds a TLS configuration. Err means one is already set.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let cli = Cli::parse();
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let loaded = match Config::load(cli.config.as_deref(), env, &cli.overrides()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("wharf: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config(_) = cli.command {
        for warning in &loaded.warnings {
            eprintln!("wharf: warning: {warning}");
        }
        print!("{}", loaded.config);
        return ExitCode::SUCCESS;
    }
    if let Command::Probe(args) = &cli.command {
        // Run by health checks every few seconds: one line on failure, no log setup.
        let url = args
            .url
            .clone()
            .unwrap_or_else(|| wharf_gateway::probe::default_url(&loaded.config));
        let timeout = std::time::Duration::from_secs(args.timeout.max(1));
        return match wharf_gateway::probe::probe(&url, timeout) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wharf probe: {}", one_line(&e));
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = telemetry::init(&loaded.config.log) {
        eprintln!("wharf: {e}");
        return ExitCode::from(2);
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let config = loaded.config;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => server::serve(config).await,
            Command::Migrate(_) => server::migrate(config).await,
            Command::Worker(_) => server::worker(config).await,
            Command::Gc(args) => wharf_gateway::gc::run(config, args.options(), args.json)
                .await
                .map(|_| ()),
            Command::Check(args) => wharf_gateway::check::run(config, args.options(), args.json)
                .await
                .and_then(|report| {
                    anyhow::ensure!(
                        report.consistent,
                        "the database and the blob store disagree (see above)"
                    );
                    Ok(())
                }),
            Command::Config(_) | Command::Probe(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Many library errors already repeat their
/// source in their own message; a cause already shown is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
