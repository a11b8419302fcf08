//! `driftless-runner [SPEC_FILE]`: reads a RunSpec (JSON) from the file or stdin, prints the
//! RunResult (JSON) on stdout. Logs go to stderr. Exit code 0 means a result was delivered,
//! whatever the outcome; the result says what happened.
//!
//! In a pod: `driftless-runner --spec-file F --result-secret NAME --termination-log PATH`
//! writes the result into the Secret NAME (owned by the pod) instead of stdout, and a short
//! pointer into the termination message.

use std::io::Read;

struct Args {
    spec_file: Option<String>,
    result_secret: Option<String>,
    termination_log: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { spec_file: None, result_secret: None, termination_log: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--spec-file" => args.spec_file = Some(value("--spec-file")?),
            "--result-secret" => args.result_secret = Some(value("--result-secret")?),
            "--termination-log" => args.termination_log = Some(value("--termination-log")?),
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            path => args.spec_file = Some(path.to_string()),
        }
    }
    Ok(args)
}

fn fail(message: &str, termination_log: Option<&str>) -> std::process::ExitCode {
    eprintln!("driftless-runner: {message}");
    if let Some(path) = termination_log {
        let _ = std::fs::write(path, message);
    }
    std::process::ExitCode::from(2)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DRIFTLESS_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => return fail(&message, None),
    };
    let log = args.termination_log.as_deref();
    let input = match &args.spec_file {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf).map_err(|e| format!("cannot read stdin: {e}"))
        }
    };
    // The parse error names the field only: a RunSpec carries secret values.
    let spec = match input.and_then(|b| {
        serde_json::from_slice(&b).map_err(|e| format!("invalid RunSpec at line {} column {}: {:?}", e.line(), e.column(), e.classify()))
    }) {
        Ok(spec) => spec,
        Err(message) => return fail(&message, log),
    };
    // A pod's eviction or drain sends SIGTERM (and the runner is PID 1 there, which ignores
    // it unless handled): terraform is asked to stop gracefully, the state it writes is
    // kept, and the result says what happened.
    for kind in [tokio::signal::unix::SignalKind::terminate(), tokio::signal::unix::SignalKind::interrupt()] {
        if let Ok(mut signal) = tokio::signal::unix::signal(kind) {
            tokio::spawn(async move {
                if signal.recv().await.is_some() {
                    tracing::warn!("asked to stop: terraform stops gracefully and its state is saved");
                    driftless_runner::terraform::request_stop();
                }
            });
        }
    }
    let result = driftless_runner::run(spec).await;
    if let Some(secret) = &args.result_secret {
        let result = driftless_runner::errored_state::fit_for_secret(result, driftless_runner::errored_state::RESULT_SECRET_LIMIT);
        let pod = match driftless_runner::pod::PodIdentity::from_env() {
            Ok(p) => p,
            Err(message) => return fail(&message, log),
        };
        if let Err(message) = driftless_runner::pod::write_result(&pod, secret, &result).await {
            return fail(&message, log);
        }
        if let Some(path) = log {
            let pointer = serde_json::json!({ "outcome": result.outcome, "resultSecret": secret });
            let _ = std::fs::write(path, pointer.to_string());
        }
        return std::process::ExitCode::SUCCESS;
    }
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot encode the result: {e}"), log),
    }
}
