//! The listener: accepts connections and serves HTTP/1.1 on each under limits no client can
//! push past. A client has `header_read_timeout` to send a request's headers, and the same time
//! to start its next request on a kept-alive connection (hyper restarts the timer whenever the
//! connection falls idle); `body_read_timeout` to send a body. At most `max_connections` are
//! served at once: the next one asks the oldest to close (an idle one closes at once, a busy one
//! after its response), so a flood of idle sockets can only push out other idle sockets, never
//! keep `/health` or a real client waiting in the listen queue.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower_http::timeout::RequestBodyTimeout;

/// What one client may hold of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; the next one closes the oldest.
    pub max_connections: usize,
    /// Time to send a request's headers, and the idle time allowed between requests.
    pub header_read_timeout: Duration,
    /// Time to send a request's body.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// The live connections, oldest first, each with the signal that asks it to close.
#[derive(Default)]
struct Live {
    next_id: u64,
    open: BTreeMap<u64, Arc<Notify>>,
}

type Registry = Arc<Mutex<Live>>;

fn locked(registry: &Registry) -> std::sync::MutexGuard<'_, Live> {
    // The map stays consistent whatever a panicking holder did: every change is one call.
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Registered {
    registry: Registry,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        locked(&self.registry).open.remove(&self.id);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then asks every connection to close
/// and waits for them (in-flight requests finish; each is bounded by the router's timeout).
///
/// # Errors
/// None today: accept errors (out of file descriptors, a reset before accept) are logged and
/// the loop goes on.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let registry: Registry = Arc::default();
    let mut tasks = JoinSet::new();
    let max = limits.max_connections.max(1);
    tokio::pin!(shutdown);
    loop {
        // Connections asked to close still count until they have: never more than twice the
        // cap exist, however fast clients connect.
        while tasks.len() >= 2 * max {
            tasks.join_next().await;
        }
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    // Out of descriptors: give closing connections a moment to free some.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let close = Arc::new(Notify::new());
        let id = {
            let mut live = locked(&registry);
            if live.open.len() >= max {
                if let Some((_, oldest)) = live.open.pop_first() {
                    oldest.notify_one();
                }
            }
            let id = live.next_id;
            live.next_id += 1;
            live.open.insert(id, close.clone());
            id
        };
        let registered = Registered {
            registry: registry.clone(),
            id,
        };
        let service = TowerToHyperService::new(RequestBodyTimeout::new(
            app.clone(),
            limits.body_read_timeout,
        ));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tasks.spawn(async move {
            let _registered = registered;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = close.notified() => connection.as_mut().graceful_shutdown(),
            }
            // Errors here are the client's (reset, timeout): nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    for close in std::mem::take(&mut locked(&registry).open).into_values() {
        close.notify_one();
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
