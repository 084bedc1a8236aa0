//! `bench --api-clients`: the HTTP API under bounded loopback load — clients polling stats,
//! history and health while runs execute. Plain HTTP/1.1 over keep-alive TCP connections.

use crate::http::{self, AppState};
use crate::job::JobConfig;
use crate::store::SqlStore;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What the load test saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    pub clients: usize,
    pub seconds: f64,
    pub requests: usize,
    pub errors: usize,
    pub runs_completed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

const KEY: &str = "bench-load-key-0123456789";

async fn request(
    stream: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.get_mut().write_all(head.as_bytes()).await?;
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0; length];
    stream.read_exact(&mut buf).await?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

/// Serves the API on an ephemeral loopback port over `store`, runs `clients` pollers for
/// `seconds` while a driver triggers runs back to back, and reports latencies.
///
/// # Errors
/// I/O errors of the listener.
pub async fn run(
    store: SqlStore,
    clients: usize,
    seconds: u64,
) -> Result<LoadFigures, std::io::Error> {
    let state = AppState::new(
        Arc::new(store),
        JobConfig::default(),
        None,
        Some(KEY.to_owned()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        state,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(10),
    ));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // A first job whose status every poller watches.
    let first = {
        let mut stream = BufReader::new(TcpStream::connect(addr).await?);
        let (_, body) = request(
            &mut stream,
            "POST",
            "/api/processing/cache-sync/trigger",
            r#"{"mode":"full","force":true}"#,
        )
        .await?;
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["job_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "none".to_owned())
    };
    let first_for_driver = first.clone();

    // The driver keeps a run going: trigger, poll its status until it ends, trigger again.
    let driver = tokio::spawn(async move {
        let mut completed = 0;
        let Ok(stream) = TcpStream::connect(addr).await else {
            return 0;
        };
        let mut stream = BufReader::new(stream);
        let mut current = Some(first_for_driver);
        while Instant::now() < deadline {
            if let Some(job_id) = current.take() {
                while Instant::now() < deadline {
                    let path = format!("/api/processing/cache-sync/status/{job_id}");
                    let Ok((_, body)) = request(&mut stream, "GET", &path, "").await else {
                        break;
                    };
                    if body.contains("\"completed\"") || body.contains("\"failed\"") {
                        completed += 1;
                        break;
                    }
                }
                continue;
            }
            let Ok((status, body)) = request(
                &mut stream,
                "POST",
                "/api/processing/cache-sync/trigger",
                r#"{"mode":"full","force":true}"#,
            )
            .await
            else {
                break;
            };
            if status != 202 {
                tokio::task::yield_now().await;
                continue;
            }
            let job_id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["job_id"].as_str().map(str::to_owned));
            let Some(job_id) = job_id else { break };
            current = Some(job_id);
        }
        completed
    });

    let mut pollers = Vec::new();
    let status_path: &'static str =
        Box::leak(format!("/api/processing/cache-sync/status/{first}").into_boxed_str());
    for i in 0..clients {
        pollers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let Ok(stream) = TcpStream::connect(addr).await else {
                return (latencies, 1);
            };
            let mut stream = BufReader::new(stream);
            let paths = [
                "/api/processing/cache-sync/stats",
                status_path,
                "/api/processing/cache-sync/history?limit=5",
            ];
            let mut n = i;
            while Instant::now() < deadline {
                let path = paths[n % paths.len()];
                n += 1;
                let started = Instant::now();
                match request(&mut stream, "GET", path, "").await {
                    // The watched job may not exist yet on a fresh database: 404 is an answer.
                    Ok((200 | 404, _)) => latencies.push(started.elapsed().as_secs_f64() * 1e3),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for p in pollers {
        if let Ok((lat, err)) = p.await {
            all.extend(lat);
            errors += err;
        }
    }
    let runs_completed = driver.await.unwrap_or(0);
    let _ = stop_tx.send(());
    let _ = server.await;
    all.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(LoadFigures {
        clients,
        seconds: seconds as f64,
        requests: all.len() + errors,
        errors,
        runs_completed,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: all.last().copied().unwrap_or(0.0),
    })
}
