use clap::Parser;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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
    // unless DRIFTLESS_LOG says otherwise: what a controller's log would show.
    let file = cli.store_log().and_then(|path| {
        std::fs::create_dir_all(path.parent()?).ok()?;
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
