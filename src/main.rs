use clap::Parser;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The size past which a local store's log is set aside (`driftless.log.1`) for a new one.
const LOG_LIMIT: u64 = 16 << 20;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = driftless::cli::Cli::parse();
    let filter = || tracing_subscriber::EnvFilter::try_from_env("DRIFTLESS_LOG");
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter().unwrap_or_else(|_| cli.default_log_filter().into()));
    // A local store's reconciling commands also log to the store (`driftless logs`), at info
    // unless DRIFTLESS_LOG says otherwise: what a controller's log would show. Only a store
    // that exists (a mistyped --store is refused, never made), and one earlier log is kept
    // when it grew past LOG_LIMIT.
    let file = cli.store_log().filter(|path| path.parent().is_some_and(std::path::Path::is_dir)).and_then(|path| {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = std::fs::rename(&path, path.with_extension("log.1"));
        }
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
    });
    let file = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_target(false)
            .with_ansi(false)
            .with_filter(filter().unwrap_or_else(|_| "info".into()))
    });
    tracing_subscriber::registry().with(stderr).with(file).init();
    match driftless::cli::execute(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
