//! `driftless-runner [SPEC_FILE]`: reads a RunSpec (JSON) from the file or stdin, prints the
//! RunResult (JSON) on stdout. Logs go to stderr. Exit code 0 means a result was printed,
//! whatever the outcome; the result says what happened.

use std::io::Read;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DRIFTLESS_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let input = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}")),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf).map_err(|e| format!("cannot read stdin: {e}"))
        }
    };
    let spec = match input.and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("invalid RunSpec: {e}"))) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("driftless-runner: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = driftless_runner::run(spec).await;
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("driftless-runner: cannot encode the result: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
