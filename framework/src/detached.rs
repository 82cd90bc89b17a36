//! Work that must not be cut in half when its caller is dropped.
//!
//! A handler's future is dropped when its client disconnects, at whatever `.await` it
//! stands. A step made of two writes that must agree (a recorded state and the applied
//! one; an object row and the discard of a refused upload) runs through
//! [`run_to_end`] instead: in a task of its own, which the caller only waits for.

use std::future::Future;

/// Runs `work` to its end in its own task and returns its output, or `None` if the
/// runtime stopped first. A panic in `work` resumes in the caller, as if it ran inline.
pub(crate) async fn run_to_end<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    match tokio::spawn(work).await {
        Ok(output) => Some(output),
        Err(error) => match error.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(_cancelled) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_goes_on_when_its_caller_is_dropped() {
        let finished = Arc::new(AtomicBool::new(false));
        let (started, wait_started) = tokio::sync::oneshot::channel();
        let work = {
            let finished = finished.clone();
            async move {
                let _ = started.send(());
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.store(true, Ordering::SeqCst);
            }
        };

        let caller = tokio::spawn(run_to_end(work));
        wait_started.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !finished.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the work was cut short"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn the_output_comes_back() {
        assert_eq!(run_to_end(async { 7 }).await, Some(7));
    }
}
