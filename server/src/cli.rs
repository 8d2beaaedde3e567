//! The command line: `orbit [serve]`, `orbit migrate`, `orbit token mint`.
//!
//! Every subcommand reads the same configuration; a bad value stops it with one line on stderr
//! naming the variable, and exit code 2.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::auth::secret::Source;
use crate::config::Config;
use crate::startup;

/// Orbit: a git server for machines.
#[derive(Debug, Parser)]
#[command(name = "orbit", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Work with tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print an HS256 JWT signed with the configured (or generated) secret.
    Mint {
        /// The user UUID the token names (`sub`).
        #[arg(long)]
        sub: Uuid,
        /// Space-separated scopes, e.g. "orbit:repo:<orgId>/<name>:read".
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
        ttl_seconds: u64,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A .env file in the working directory fills in variables that are not already set.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("error: .env: {e}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Token {
            command:
                TokenCommand::Mint {
                    sub,
                    scope,
                    ttl_seconds,
                },
        } => mint(&config, sub, scope.as_deref(), ttl_seconds),
        command => {
            init_tracing(&config);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = match command {
                Command::Migrate => runtime.block_on(migrate(config)),
                _ => runtime.block_on(serve(config)),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn mint(config: &Config, sub: Uuid, scope: Option<&str>, ttl_seconds: u64) -> ExitCode {
    let token = startup::authenticator(config).and_then(|(_, secret)| {
        crate::auth::token::Hs256::new(&secret.bytes)?
            .mint(sub, scope, Duration::from_secs(ttl_seconds))
            .map_err(Into::into)
    });
    match token {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    startup::ensure_dirs(&config)?;
    startup::database(&config).await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let (state, report) = startup::prepare(config).await?;
    let c = &state.config;
    tracing::info!(
        database = %redact(&c.database_url),
        storage = %c.storage_root.display(),
        "metadata store ready (migrations applied)"
    );
    match &report.secret_source {
        Source::Environment => tracing::info!("HS256 tokens are verified with AUTH_COOKIE_SECRET"),
        Source::File(path) | Source::Generated(path) => {
            let verb = if matches!(report.secret_source, Source::Generated(_)) {
                "generated"
            } else {
                "using"
            };
            tracing::info!(
                "no AUTH_COOKIE_SECRET: {verb} the HS256 secret in {}; mint a token with: \
                 orbit token mint --sub <user-uuid>  (cargo run -p orbit-server -- token mint --sub <user-uuid>)",
                path.display()
            );
        }
    }
    match &c.auth0 {
        Some(a) => {
            tracing::info!(jwks = %a.jwks_url, audience = %a.audience, "RS256 tokens accepted from {}", a.issuer)
        }
        None => tracing::info!("RS256 tokens are not accepted (AUTH0_DOMAIN/AUTH0_AUDIENCE unset)"),
    }
    if c.internal_token.is_none() {
        tracing::info!(
            "internal and admin routes are closed (401): INTERNAL_SERVICE_TOKEN is unset"
        );
    }
    let tls = match &c.tls {
        Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (SERVER_HOST/SERVER_PORT): {e}"))?;
    let local = listener.local_addr()?;
    let public = c.public_base_url.clone();
    let stop_workers = std::sync::Arc::new(tokio::sync::Notify::new());
    crate::jobs::spawn_workers(&state, stop_workers.clone());
    let limiter = state.limiter.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            limiter.shrink();
        }
    });
    let app = crate::app(state);
    match tls {
        Some(acceptor) => {
            tracing::info!("orbit listening on https://{local} (public URL {public})");
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<crate::limits::Peer>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        }
        None => {
            tracing::info!("orbit listening on http://{local} (public URL {public})");
            let listener = crate::tls::NoDelayListener(listener);
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<crate::limits::Peer>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        }
    }
    stop_workers.notify_waiters();
    tracing::info!("orbit stopped");
    Ok(())
}

/// Hides a password in a database URL for the log.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
