//! Fencing: a daemon's leadership is a claim with a deadline, and every
//! mutating request (POST, PUT, PATCH, DELETE: cordon, evict, delete, uncordon,
//! retire, annotate, Events) goes through a client layer that refuses it once
//! the deadline has passed. A leader paused past its lease (SIGSTOP, a VM
//! freeze) wakes up unable to write; reads still work, so it can see it lost.
//! The CLI's fence never closes; the elector's own client is not fenced.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request};
use tower::{BoxError, Layer, Service};

#[derive(Clone, Debug)]
pub struct Fence {
    /// The deadline, in ms after `epoch`; 0 closed, u64::MAX never closes.
    deadline_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Fence {
    /// A fence that never closes (the CLI: no leadership to lose).
    pub fn open() -> Self {
        Self {
            deadline_ms: Arc::new(AtomicU64::new(u64::MAX)),
            epoch: Instant::now(),
        }
    }

    /// Closed until `extend_to` (the daemon before it is elected).
    pub fn closed() -> Self {
        Self {
            deadline_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    /// Writes are allowed until `until` (monotonic: a paused process's clock runs on).
    pub fn extend_to(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.epoch).as_millis() as u64;
        self.deadline_ms.store(ms.max(1), Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.deadline_ms.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        deadline == u64::MAX || (self.epoch.elapsed().as_millis() as u64) < deadline
    }

    /// How long writes stay allowed; None when closed.
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        if deadline == u64::MAX {
            return Some(Duration::MAX);
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        (now < deadline).then(|| Duration::from_millis(deadline - now))
    }
}

/// The error a fenced write gets (kube reports it as `Error::Service`).
#[derive(Debug, thiserror::Error)]
#[error("fenced: this node-drain's leadership lease has lapsed, no write is sent")]
pub struct Fenced;

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[derive(Clone)]
pub struct FenceLayer(pub Fence);

impl<S> Layer<S> for FenceLayer {
    type Service = FencedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FencedService {
            inner,
            fence: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FencedService<S> {
    inner: S,
    fence: Fence,
}

impl<S, B> Service<Request<B>> for FencedService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if mutating(req.method()) && !self.fence.is_open() {
            return Box::pin(std::future::ready(Err(Box::new(Fenced) as BoxError)));
        }
        let call = self.inner.call(req);
        Box::pin(async move { call.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_open_until_its_deadline() {
        assert!(Fence::open().is_open());
        let f = Fence::closed();
        assert!(!f.is_open() && f.remaining().is_none());
        f.extend_to(Instant::now() + Duration::from_secs(5));
        assert!(f.is_open());
        f.extend_to(Instant::now() + Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!f.is_open() && f.remaining().is_none());
        f.extend_to(Instant::now() + Duration::from_secs(5));
        f.close();
        assert!(!f.is_open());
        assert!(!mutating(&Method::GET) && mutating(&Method::PATCH) && mutating(&Method::POST));
    }
}
