//! Fencing: a daemon's leadership is a claim with a deadline, and every
//! mutating request (POST, PUT, PATCH, DELETE: cordon, evict, delete, uncordon,
//! retire, annotate, Events) goes through a client layer that refuses it once
//! the deadline has passed, and cuts it when the deadline passes while it is
//! under way (connection setup included). Reads still work, so a fenced leader
//! can see it lost. The CLI's fence never closes; the elector's own client is
//! not fenced.
//!
//! The deadline is kept on CLOCK_BOOTTIME, which runs on while the machine is
//! suspended (CLOCK_MONOTONIC, Rust's `Instant`, stops). Covered: a process
//! paused or starved (SIGSTOP, CPU throttling, a stop-the-world stall) and a
//! suspended machine, whose clock catches up when it resumes: it wakes up
//! unable to write. Not covered: a VM its hypervisor pauses and resumes with
//! the guest's clocks restored (e.g. QEMU stop/cont with kvmclock), which sees
//! no time pass; no local clock can see that. There, what protects the nodes
//! is that every write of a run tests the Node's recorded run id or
//! resourceVersion, so a stale leader's patch is refused by the API server.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request};
use tower::{BoxError, Layer, Service};

/// Milliseconds of CLOCK_BOOTTIME; None if it cannot be read (the fence then
/// stays closed).
fn boot_ms() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
}

#[derive(Clone, Debug)]
pub struct Fence {
    /// The deadline, in CLOCK_BOOTTIME ms; 0 closed, u64::MAX never closes.
    deadline_ms: Arc<AtomicU64>,
}

impl Fence {
    /// A fence that never closes (the CLI: no leadership to lose).
    pub fn open() -> Self {
        Self {
            deadline_ms: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Closed until `extend_to` (the daemon before it is elected).
    pub fn closed() -> Self {
        Self {
            deadline_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes are allowed until `until` (taken on the boot clock now, so a
    /// suspend after this call counts).
    pub fn extend_to(&self, until: Instant) {
        let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
        match boot_ms() {
            Some(now) => self
                .deadline_ms
                .store((now + left).clamp(1, u64::MAX - 1), Ordering::SeqCst),
            None => self.close(),
        }
    }

    pub fn close(&self) {
        self.deadline_ms.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        self.remaining().is_some()
    }

    /// How long writes stay allowed; None when closed.
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        if deadline == u64::MAX {
            return Some(Duration::MAX);
        }
        let now = boot_ms()?;
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
        if !mutating(req.method()) {
            // Reads are never cut: a watch of a node's pods lasts minutes.
            let call = self.inner.call(req);
            return Box::pin(async move { call.await.map_err(Into::into) });
        }
        // A write may take no longer than the fence has left: the connection
        // setup (up to 10 s) and the answer included. Cut, it is reported as
        // fenced; the request was either never sent or may have reached the
        // API server before the deadline, which is still inside the lease a
        // follower waits out (the lease is 15 s, the fence 10 s).
        let Some(left) = self.fence.remaining() else {
            return Box::pin(std::future::ready(Err(Box::new(Fenced) as BoxError)));
        };
        let call = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(left, call).await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(Box::new(Fenced) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_runs_on_the_boot_clock() {
        // CLOCK_BOOTTIME counts a suspend, CLOCK_MONOTONIC does not: the boot
        // clock is never behind the monotonic one.
        let mut mono = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to write.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) },
            0
        );
        let boot = boot_ms().expect("CLOCK_BOOTTIME");
        assert!(boot >= mono.tv_sec as u64 * 1000, "{boot} < {mono:?}");
        let f = Fence::closed();
        f.extend_to(Instant::now() + Duration::from_secs(5));
        let left = f.remaining().unwrap();
        assert!(left > Duration::from_millis(4900) && left <= Duration::from_secs(5));
    }

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

    /// A service whose answers never come (a half-open connection, a
    /// connect that takes its whole timeout).
    struct Silent;

    impl Service<Request<()>> for Silent {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Pending<Result<(), BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::pending()
        }
    }

    fn request(method: Method) -> Request<()> {
        Request::builder().method(method).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_write_is_bounded_by_what_remains_of_the_fence_and_a_read_is_not() {
        let fence = Fence::closed();
        fence.extend_to(Instant::now() + Duration::from_millis(200));
        let mut service = FenceLayer(fence.clone()).layer(Silent);
        let started = Instant::now();
        let write =
            tokio::time::timeout(Duration::from_secs(3), service.call(request(Method::PATCH)))
                .await
                .expect("a fenced write that never answers is cut when the fence closes");
        let err = write.expect_err("cut, not answered");
        assert!(err.is::<Fenced>(), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "cut {:?} after it started; the fence had 200 ms left",
            started.elapsed()
        );
        // Reads (the watch of a node's pods among them) are never cut by the fence.
        fence.extend_to(Instant::now() + Duration::from_millis(100));
        let read = tokio::time::timeout(
            Duration::from_millis(400),
            service.call(request(Method::GET)),
        )
        .await;
        assert!(read.is_err(), "a read is not bounded by the fence");
    }
}
