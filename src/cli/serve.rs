//! `cache-sync serve`: the HTTP API, with its key checked before anything listens.

use super::{connect, job_config, publisher, CliError, Exit};
use crate::config::{Config, ServeArgs};
use std::sync::Arc;

/// Serves until Ctrl-C or SIGTERM.
pub(super) async fn serve(config: &Config, args: &ServeArgs) -> Result<Exit, CliError> {
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(key), _) => Some(key.expose().to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
                path: path.display().to_string(),
                source,
            })?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        (None, None) => None,
    };
    match &api_key {
        Some(key) if key.len() < 16 => {
            return Err(CliError::Usage(
                "the API key must be at least 16 characters".to_owned(),
            ));
        }
        None if !(args.unauthenticated_loopback && args.bind.ip().is_loopback()) => {
            return Err(CliError::Usage(
                "no API key: set CACHE_SYNC_API_KEY (or --api-key-file), or pass --unauthenticated-loopback with a loopback --bind".to_owned(),
            ));
        }
        _ => {}
    }
    let job = job_config(config)?;
    let store = connect(config).await?;
    let mut state = crate::http::AppState::new(Arc::new(store), job, publisher(config)?, api_key);
    state.test_pause_after_commit = args.test_pause_after_commit;
    state.test_pause_before_commit = args.test_pause_before_commit;
    state.follow_imports = args.follow_imports;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.bind)))?;
    let shutdown = crate::http::shutdown_signal().map_err(|e| {
        CliError::Usage(format!("cannot install the shutdown signal handlers: {e}"))
    })?;
    eprintln!("cache-sync: serving on http://{}", args.bind);
    crate::http::serve(listener, state, shutdown, args.shutdown_grace)
        .await
        .map_err(|e| CliError::Usage(format!("the service stopped: {e:#}")))?;
    Ok(Exit::Success)
}
