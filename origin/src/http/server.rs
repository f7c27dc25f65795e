//! Serves HTTP/1.1 (as `axum::serve` does with axum's features here), each request
//! offered to the hit path first and then to the router.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::Service;

use super::hit;
use crate::state::AppState;

#[derive(Clone)]
struct Front {
    state: Arc<AppState>,
    router: Router,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let Self { state, router } = self.clone();
        Box::pin(async move {
            let mut request = request;
            if let Some(hit) = hit::answer(&state, &mut request).await {
                return Ok(hit);
            }
            let mut router = router;
            // The router is always ready; asked all the same, as a service must be.
            poll_fn(|cx| Service::<hyper::Request<Incoming>>::poll_ready(&mut router, cx)).await?;
            router.call(request).await
        })
    }
}

/// Serves `state`'s API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let front = Front {
        router: super::router(state.clone()),
        state,
    };
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
        let connection =
            http1::Builder::new().serve_connection(TokioIo::new(stream), front.clone());
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
