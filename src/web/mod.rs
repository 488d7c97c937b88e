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
//!
//! Bounds: [`listener::MAX_CONNECTIONS`] HTTP connections and [`MAX_STREAMS`] event
//! streams at once; every snapshot is rebuilt from the bounded [`SwarmView`].

pub(crate) mod listener;
pub(crate) mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub(crate) use view::{Role, SwarmView};

use crate::error::Error;

/// The page, with its script and styles inline (no other request needed).
const PAGE: &str = include_str!("page.html");
/// How long open web connections may take to finish once the node stops.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The shortest gap between two snapshots on the event stream.
pub(crate) const THROTTLE: Duration = Duration::from_millis(200);

/// Event streams served at once; one more is refused (503) until one closes.
pub(crate) const MAX_STREAMS: usize = 32;

#[derive(Clone)]
struct App {
    view: Arc<SwarmView>,
    token: CancellationToken,
    streams: Arc<Semaphore>,
}

/// The `Host` values this server answers to.
fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let mut hosts = vec![local.to_string()];
    if local.ip().is_loopback() {
        hosts.push(format!("localhost:{}", local.port()));
    }
    hosts
}

/// Binds the web view's listener on `addr` (and only there), if one is asked for.
pub(crate) async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, Error> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(Some(listener))
}

/// Serves the page on `listener` as one more task of `tracker`, logging its URL; an
/// error ends the web view only, never the node.
pub(crate) fn spawn(
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
            // Open connections get a moment to finish once the node stops; one that
            // never finishes its request must not keep the node up.
            let stopping = token.clone();
            let grace = async move {
                stopping.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                served = serve(listener, view, token) => if let Err(e) = served {
                    tracing::warn!(cause = %e, "web view stopped");
                },
                () = grace => tracing::debug!("web view: connections cut at shutdown"),
            }
        },
        span,
    ));
}

/// Serves the page until `token` is cancelled.
pub(crate) async fn serve(
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
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
    };
    let router = Router::new()
        .route("/", get(page))
        .route("/state", get(state))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(hosts, check_host))
        .with_state(app);
    axum::serve(listener::Bounded::new(listener), router)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .map_err(|source| Error::Io {
            what: "serving the web view",
            source,
        })
}

async fn check_host(State(hosts): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    let ours = |h: &str| hosts.iter().any(|a| a.eq_ignore_ascii_case(h));
    let mut given = req.headers().get_all(header::HOST).iter();
    let host = match (given.next(), given.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None, // none, or more than one
    };
    // An absolute-form target (`GET http://name/ HTTP/1.1`) names the host it is for.
    let target_ok = req.uri().authority().is_none_or(|a| ours(a.as_str()));
    match host {
        Some(h) if ours(h) && target_ok => {
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

async fn state(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.view.snapshot_text().to_string(),
    )
        .into_response()
}

async fn events(State(app): State<App>) -> Response {
    let Ok(permit) = Arc::clone(&app.streams).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many open event streams\n").into_response();
    };
    let watches = (app.view.subscribe(), app.view.own_count(), permit);
    Sse::new(snapshots(watches, app))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A snapshot at once, then one per change of the view or of the node's own chunks (at
/// most every [`THROTTLE`], at least every second), until the node stops. The permit is
/// held for the stream's life.
fn snapshots(
    watches: (watch::Receiver<u64>, watch::Receiver<u32>, OwnedSemaphorePermit),
    app: App,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((watches, true, app), |(mut w, first, app)| async move {
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
        let event = Event::default().data(&*app.view.snapshot_text());
        Some((Ok(event), (w, false, app)))
    })
}
