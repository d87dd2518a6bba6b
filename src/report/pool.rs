//! Rendering is CPU work, so it runs on threads of its own, one per core by
//! default, at the lowest CPU priority (nice 19 on Linux): whatever the chats
//! and the store need they get first, and the renders use every cycle left
//! over. A burst of finalizations therefore drains as fast as the idle CPU
//! allows without costing the live chats their latency. Renders queue in
//! order; each has a time-out once it has started.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use super::data::{RenderError, ReportData};
use super::render::ReportRenderer;

/// The render threads' niceness: the lowest priority there is.
const RENDER_NICE: i32 = 19;

struct Job {
    data: ReportData,
    reply: oneshot::Sender<Result<Vec<u8>, RenderError>>,
}

#[derive(Clone)]
pub struct RenderPool {
    jobs: mpsc::Sender<Job>,
    /// One per render thread that is free: a job is handed over only with a
    /// permit, so the time-out counts rendering, not waiting in the queue.
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl RenderPool {
    /// Starts `threads` render threads; they stop when the last clone of the
    /// pool is dropped.
    pub fn new(renderer: ReportRenderer, threads: usize, timeout: Duration) -> Self {
        let threads = threads.max(1);
        let renderer = Arc::new(renderer);
        let permits = Arc::new(Semaphore::new(threads));
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let renderer = Arc::clone(&renderer);
            let queue = Arc::clone(&queue);
            let thread_permits = Arc::clone(&permits);
            let spawned = std::thread::Builder::new()
                .name(format!("leadchat-render-{n}"))
                .spawn(move || render_thread(&renderer, &queue, &thread_permits));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a render thread");
                permits.forget_permits(1);
            }
        }
        Self {
            jobs,
            permits,
            timeout,
        }
    }

    pub async fn render(&self, data: ReportData) -> Result<Vec<u8>, RenderError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RenderError::Pdf("render pool closed".into()))?;
        let started = std::time::Instant::now();
        let (reply, mut answer) = oneshot::channel();
        self.jobs
            .send(Job { data, reply })
            .map_err(|_| RenderError::Pdf("no render thread is running".into()))?;
        let pdf = match tokio::time::timeout(self.timeout, &mut answer).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(RenderError::Pdf("the render thread stopped".into())),
            Err(_) => {
                answer.close();
                if let Ok(result) = answer.try_recv() {
                    // Finished just as the time ran out.
                    result?
                } else {
                    // The thread is still busy with it: its permit comes
                    // back when it finishes (see `render_thread`), not now.
                    permit.forget();
                    return Err(RenderError::Pdf(format!(
                        "render took longer than {:?}",
                        self.timeout
                    )));
                }
            }
        };
        drop(permit);
        metrics::histogram!(crate::telemetry::names::RENDER_LATENCY)
            .record(started.elapsed().as_secs_f64());
        Ok(pdf)
    }
}

fn render_thread(
    renderer: &ReportRenderer,
    queue: &Mutex<mpsc::Receiver<Job>>,
    permits: &Semaphore,
) {
    lower_priority();
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return, // the pool is gone
            }
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| renderer.render(&job.data)))
            .unwrap_or_else(|_| Err(RenderError::Pdf("the renderer panicked".into())));
        if job.reply.send(result).is_err() {
            // Nobody waits any more: the render had timed out and its permit
            // was held back until now.
            permits.add_permits(1);
        }
    }
}

/// Renders must never take CPU from the chats: nice 19 on this thread only
/// (Linux applies `setpriority` to a thread id alone).
#[cfg(target_os = "linux")]
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(tid), RENDER_NICE) {
        tracing::warn!(error = %err, "cannot lower the render thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = RENDER_NICE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn render_threads_run_at_the_lowest_priority() {
        let handle = std::thread::spawn(|| {
            lower_priority();
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
        });
        let nice = handle.join().expect("thread ran").expect("getpriority");
        assert_eq!(nice, RENDER_NICE);
        // The calling thread keeps its own priority.
        let mine = rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .expect("getpriority");
        assert_ne!(mine, RENDER_NICE);
    }
}
