//! Serves HTTP/1.1 (as `axum::serve` does with axum's features here), each request
//! offered to the hit path first and then to the router.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::Service;

use super::hit;
use crate::auth::LastToken;
use crate::state::AppState;

/// One connection's service: the hit path, then the router.
struct Front {
    state: Arc<AppState>,
    router: Router,
    last: LastToken,
    last_page: hit::LastPage,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        if let Some(hit) = hit::answer(&self.state, &mut request, &self.last, &self.last_page) {
            return Either::Left(ready(Ok(hit)));
        }
        // axum's router is always ready (its `poll_ready` answers `Ready` at once).
        Either::Right(self.router.clone().call(request))
    }
}

/// Serves `state`'s API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = super::router(state.clone());
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let front = Front {
            state: state.clone(),
            router: router.clone(),
            last: LastToken::default(),
            last_page: hit::LastPage::default(),
        };
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), front);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}
