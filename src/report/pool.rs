//! Rendering is CPU work: it runs on tokio's blocking pool, at most one
//! render per core at a time, with a time-out, so a burst of finalizations
//! queues instead of stalling chats.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::data::{RenderError, ReportData};
use super::render::ReportRenderer;

#[derive(Clone)]
pub struct RenderPool {
    renderer: Arc<ReportRenderer>,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl RenderPool {
    pub fn new(renderer: ReportRenderer, parallel: usize, timeout: Duration) -> Self {
        Self {
            renderer: Arc::new(renderer),
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            timeout,
        }
    }

    pub async fn render(&self, data: ReportData) -> Result<Vec<u8>, RenderError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RenderError::Pdf("render pool closed".into()))?;
        let renderer = Arc::clone(&self.renderer);
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || renderer.render(&data));
        let pdf = match tokio::time::timeout(self.timeout, job).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => return Err(RenderError::Pdf(format!("render task failed: {join}"))),
            Err(_) => {
                return Err(RenderError::Pdf(format!(
                    "render took longer than {:?}",
                    self.timeout
                )));
            }
        };
        metrics::histogram!(crate::telemetry::names::RENDER_LATENCY)
            .record(started.elapsed().as_secs_f64());
        Ok(pdf)
    }
}
