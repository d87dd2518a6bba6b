//! A filter in front of actix's WebSocket codec. The codec buffers a whole
//! frame before it checks its size, so a frame that declares a huge length and
//! trickles its bytes would hold memory and a socket forever. This guard reads
//! each frame header as it arrives: a data frame over the limit has its
//! payload discarded as it streams in (and a `TooLarge` event is raised so the
//! socket can answer with an error frame), and a frame whose bytes do not all
//! arrive within the read time-out ends the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_channel::mpsc::UnboundedSender;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Declared lengths above this close the connection at once: nobody sends a
/// legitimate chat frame of 16 MiB, and discarding it would waste bandwidth.
const HARD_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardEvent {
    /// A data frame over the limit was dropped; the connection goes on.
    TooLarge,
}

enum State {
    /// Collecting a frame header (2 to 14 bytes).
    Header(BytesMut),
    Pass(u64),
    Discard(u64),
}

pub struct FrameGuard<S> {
    inner: S,
    state: State,
    max_frame: u64,
    read_timeout: Duration,
    /// Armed while a frame is incomplete.
    deadline: Option<Pin<Box<Sleep>>>,
    events: UnboundedSender<GuardEvent>,
    failed: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(
        inner: S,
        max_frame: usize,
        read_timeout: Duration,
        events: UnboundedSender<GuardEvent>,
    ) -> Self {
        Self {
            inner,
            state: State::Header(BytesMut::with_capacity(14)),
            max_frame: max_frame as u64,
            read_timeout,
            deadline: None,
            events,
            failed: false,
        }
    }

    /// Runs the chunk through the frame state machine and returns the bytes
    /// the codec may see.
    fn filter(&mut self, mut chunk: Bytes) -> Result<Bytes, PayloadError> {
        let mut out = BytesMut::new();
        while !chunk.is_empty() {
            match &mut self.state {
                State::Header(header) => {
                    let need = header_len(header).unwrap_or(2).saturating_sub(header.len());
                    let take = need.min(chunk.len());
                    header.extend_from_slice(&chunk.split_to(take));
                    let Some(total) = header_len(header) else {
                        continue;
                    };
                    if header.len() < total {
                        continue;
                    }
                    let (opcode, length) = parse_header(header);
                    if length > HARD_LIMIT {
                        return Err(io_error("frame exceeds the hard size limit"));
                    }
                    let is_data = matches!(opcode, 0x1 | 0x2);
                    if is_data && length > self.max_frame {
                        let _ = self.events.unbounded_send(GuardEvent::TooLarge);
                        self.state = State::Discard(length);
                    } else {
                        out.extend_from_slice(header);
                        self.state = State::Pass(length);
                    }
                }
                State::Pass(remaining) => {
                    let take = (*remaining).min(chunk.len() as u64) as usize;
                    out.extend_from_slice(&chunk.split_to(take));
                    *remaining -= take as u64;
                }
                State::Discard(remaining) => {
                    let take = (*remaining).min(chunk.len() as u64) as usize;
                    let _ = chunk.split_to(take);
                    *remaining -= take as u64;
                }
            }
            if matches!(self.state, State::Pass(0) | State::Discard(0)) {
                self.state = State::Header(BytesMut::with_capacity(14));
            }
        }
        Ok(out.freeze())
    }

    fn mid_frame(&self) -> bool {
        !matches!(&self.state, State::Header(h) if h.is_empty())
    }
}

/// The full header length once the first two bytes are known.
fn header_len(header: &[u8]) -> Option<usize> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let ext = match header[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    Some(2 + ext + if masked { 4 } else { 0 })
}

fn parse_header(header: &[u8]) -> (u8, u64) {
    let opcode = header[0] & 0x0f;
    let length = match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    (opcode, length)
}

fn io_error(msg: &'static str) -> PayloadError {
    PayloadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let filtered = match this.filter(chunk) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            this.failed = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    };
                    if this.mid_frame() {
                        if this.deadline.is_none() {
                            this.deadline = Some(Box::pin(tokio::time::sleep_until(
                                Instant::now() + this.read_timeout,
                            )));
                        }
                    } else {
                        this.deadline = None;
                    }
                    if !filtered.is_empty() {
                        return Poll::Ready(Some(Ok(filtered)));
                    }
                }
                Poll::Ready(other) => return Poll::Ready(other),
                Poll::Pending => {
                    if let Some(deadline) = this.deadline.as_mut()
                        && deadline.as_mut().poll(cx).is_ready()
                    {
                        this.failed = true;
                        return Poll::Ready(Some(Err(io_error(
                            "frame not completed within the read time-out",
                        ))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_channel::mpsc;
    use futures_util::StreamExt;

    fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    async fn run(chunks: Vec<Vec<u8>>, max: usize) -> (Vec<u8>, Vec<GuardEvent>) {
        let (tx, mut rx) = mpsc::unbounded();
        let input = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let guard = FrameGuard::new(input, max, Duration::from_secs(5), tx);
        let out: Vec<u8> = guard.map(|r| r.expect("no error").to_vec()).concat().await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (out, events)
    }

    #[tokio::test]
    async fn passes_small_frames_through_byte_for_byte() {
        let a = masked_frame(1, b"hello");
        let b = masked_frame(1, &[b'x'; 300]);
        let joined: Vec<u8> = a.iter().chain(&b).copied().collect();
        // Split at awkward places, including inside a header.
        let chunks = vec![
            joined[..1].to_vec(),
            joined[1..9].to_vec(),
            joined[9..].to_vec(),
        ];
        let (out, events) = run(chunks, 1024).await;
        assert_eq!(out, joined);
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn drops_an_oversized_frame_and_keeps_the_next() {
        let big = masked_frame(1, &vec![b'x'; 70_000]);
        let next = masked_frame(1, b"after");
        let (out, events) = run(vec![big, next.clone()], 8192).await;
        assert_eq!(out, next);
        assert_eq!(events, vec![GuardEvent::TooLarge]);
    }

    #[tokio::test]
    async fn times_out_a_trickled_frame() {
        let (tx, _rx) = mpsc::unbounded();
        let header = masked_frame(1, &[b'x'; 200])[..8].to_vec();
        let input = futures_util::stream::iter(vec![Ok(Bytes::from(header))])
            .chain(futures_util::stream::pending());
        let mut guard = FrameGuard::new(Box::pin(input), 8192, Duration::from_millis(200), tx);
        assert!(matches!(guard.next().await, Some(Ok(_))));
        assert!(matches!(guard.next().await, Some(Err(_))));
    }
}
