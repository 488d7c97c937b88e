//! The live web view (`--http ADDR`, owner and peers): one read-only page showing the
//! swarm as this node knows it (each node's ID, address and state, a chunk × node grid
//! that fills in as chunks arrive, transfer rates, copies per chunk), updated by
//! server-sent events.
//!
//! Routes: `GET /` (the page), `GET /state` (one JSON snapshot), `GET /events` (a JSON
//! snapshot at once, then whenever the view changes, at most every [`THROTTLE`] and at
//! least every second). Only `GET`; nothing changes the node.
//!
//! DNS rebinding: a page on another site could make a browser send requests here under a
//! name that resolves to this address (Transmission's CVE-2018-5702). Every request whose
//! `Host` header is not this server's own address (`IP:PORT`, or `localhost:PORT` on a
//! loopback address) is refused with 403 before any route runs. The listener binds only
//! the address given (127.0.0.1 when only a port is given).

pub mod view;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use view::{Role, SwarmView};

use crate::error::Error;

/// The page, with its script and styles inline (no other request needed).
const PAGE: &str = include_str!("page.html");
/// The shortest gap between two snapshots on the event stream.
pub const THROTTLE: Duration = Duration::from_millis(200);

/// Parses `--http`: `PORT` (on 127.0.0.1) or `IP:PORT`.
pub fn parse_http_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("'{text}' is not PORT or IP:PORT (e.g. 8080 or 127.0.0.1:8080)"))
}

#[derive(Clone)]
struct App {
    view: Arc<SwarmView>,
    token: CancellationToken,
}

/// The `Host` values this server answers to.
fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let mut hosts = vec![local.to_string()];
    if local.ip().is_loopback() {
        hosts.push(format!("localhost:{}", local.port()));
    }
    hosts
}

/// Binds the web view's listener on `addr` (and only there).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves the page on `listener` as one more task of `tracker`, logging its URL; an
/// error ends the web view only, never the node.
pub fn spawn(
    tracker: &tokio_util::task::TaskTracker,
    listener: TcpListener,
    view: Arc<SwarmView>,
    token: &CancellationToken,
    parent: &tracing::Span,
) {
    let token = token.clone();
    let span = tracing::info_span!(parent: parent, "web");
    tracker.spawn(tracing::Instrument::instrument(
        async move {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(event = "web_view", url = %format!("http://{addr}/"), "web view at http://{addr}/");
            }
            if let Err(e) = serve(listener, view, token).await {
                tracing::warn!(cause = %e, "web view stopped");
            }
        },
        span,
    ));
}

/// Serves the page until `token` is cancelled.
pub async fn serve(
    listener: TcpListener,
    view: Arc<SwarmView>,
    token: CancellationToken,
) -> Result<(), Error> {
    let local = listener.local_addr().map_err(|source| Error::Io {
        what: "reading the web view's address",
        source,
    })?;
    let hosts: Arc<Vec<String>> = Arc::new(allowed_hosts(local));
    let app = App {
        view,
        token: token.clone(),
    };
    let router = Router::new()
        .route("/", get(page))
        .route("/state", get(state))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(hosts, check_host))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .map_err(|source| Error::Io {
            what: "serving the web view",
            source,
        })
}

async fn check_host(State(hosts): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(h) if hosts.iter().any(|a| a.eq_ignore_ascii_case(h)) => {
            let mut res = next.run(req).await;
            let headers = res.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            res
        }
        _ => (
            StatusCode::FORBIDDEN,
            format!("refused: the Host header must be {}\n", hosts.join(" or ")),
        )
            .into_response(),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn state(State(app): State<App>) -> Json<serde_json::Value> {
    Json(app.view.snapshot())
}

async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let watches = (app.view.subscribe(), app.view.own_count());
    let stream = futures_util::stream::unfold((watches, true, app), |(mut w, first, app)| async move {
        if !first {
            tokio::select! {
                _ = app.token.cancelled() => return None,
                _ = w.0.changed() => {}
                _ = w.1.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::select! {
                _ = app.token.cancelled() => return None,
                () = tokio::time::sleep(THROTTLE) => {}
            }
        }
        let event = Event::default().data(app.view.snapshot().to_string());
        Some((Ok(event), (w, false, app)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
