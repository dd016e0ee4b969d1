//! The local stack's HTTP listener: `/health` and `/metrics` now; the API and the dashboard
//! join this router when their issue lands.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::clock::SimClock;
use super::metrics::StackMetrics;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// Counters.
    pub metrics: Arc<StackMetrics>,
    /// Simulated time.
    pub clock: SimClock,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(s): State<HttpState>) -> impl IntoResponse {
    let snap = s.metrics.snapshot();
    Json(serde_json::json!({
        "status": "ok",
        "sim_time": s.clock.now().to_rfc3339(),
        "speed": s.clock.speed(),
        "meters_online": snap.meters_online,
        "stored": snap.stored,
        "duplicates": snap.duplicates,
        "quarantined": snap.quarantined,
    }))
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// A running listener.
pub struct HttpServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` and serves in the background.
    pub async fn start(addr: SocketAddr, state: HttpState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting and waits for in-flight requests.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
