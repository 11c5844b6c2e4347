//! One HTTP request on a connection: the s3s service, and the request body drained
//! after an early answer.
//!
//! An S3 error is often answered before the request's body is read (a bad key, an
//! unknown upload, a refused key). hyper then cannot reuse the connection, and a
//! client that already reuses it (boto3's pool does) sees its next request fail with
//! a bare 400 or a reset — on a request that was fine. So, once the service has
//! answered, whatever it left of the body is read and dropped, up to
//! [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`]; past that the connection is closed
//! after the answer, as S3 does.
//!
//! Owns: the body handed to s3s ([`SharedBody`]), the drain. Must never: delay the
//! answer for longer than the drain's bound, or read more than its limit.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most of an unread body drained after an early answer.
pub const DRAIN_LIMIT: u64 = 8 << 20;
/// How long the drain may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The request body, shared between s3s (which may drop its handle unread) and the
/// connection (which drains what is left).
pub struct SharedBody(Arc<Mutex<Incoming>>);

impl Body for SharedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Pin::new(&mut *b).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).size_hint()
    }
}

/// Reads and drops what is left of a body, within the drain's bounds. Returns whether
/// the body was read to its end.
async fn drain(body: &Arc<Mutex<Incoming>>) -> bool {
    let read_all = async {
        let mut n: u64 = 0;
        loop {
            let frame = futures::future::poll_fn(|cx| {
                let mut b = body.lock().unwrap_or_else(|p| p.into_inner());
                if b.is_end_stream() {
                    return Poll::Ready(None);
                }
                Pin::new(&mut *b).poll_frame(cx)
            })
            .await;
            match frame {
                None => return true,
                Some(Ok(f)) => {
                    n += f.data_ref().map_or(0, |d| d.len() as u64);
                    if n > DRAIN_LIMIT {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME, read_all)
        .await
        .unwrap_or(false)
}

/// Serves one request: s3s answers, then the rest of the body is drained.
pub async fn handle(
    svc: S3Service,
    req: http::Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(body));
    let req = http::Request::from_parts(parts, SharedBody(shared.clone()));
    let resp = tower::Service::call(&mut svc.clone(), req).await;
    drain(&shared).await;
    resp
}
