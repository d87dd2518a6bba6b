//! A filter in front of actix's WebSocket codec. The codec buffers a whole
//! frame before it checks it, so a frame that declares a huge length and
//! trickles its bytes would hold memory and a socket forever. This guard
//! reads every frame header as it arrives, whatever the frame's kind, and
//! decides from the header alone, before any payload is kept:
//! - a data message over `max_frame_bytes` — one frame, or its fragments
//!   counted together as they arrive — has its payload discarded as it
//!   streams in, and a `TooLarge` event is raised so the socket can answer
//!   with an error frame; the connection goes on;
//! - a fragmented message is joined here (unmasked, at most `max_frame_bytes`)
//!   and handed to the codec as one frame, so the codec never sees a
//!   continuation frame;
//! - a control frame longer than 125 bytes or fragmented (RFC 6455 §5.5), a
//!   continuation with nothing to continue, a new data frame inside a
//!   fragmented message, an unknown opcode, reserved bits or an unmasked
//!   frame is a protocol error: the stream fails and the socket closes the
//!   connection with 1002;
//! - a frame (or fragmented message) whose bytes do not all arrive within
//!   the read time-out ends the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::web::{BufMut, Bytes, BytesMut};
use futures_channel::mpsc::UnboundedSender;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Declared lengths above this close the connection at once: nobody sends a
/// legitimate chat frame of 16 MiB, and discarding it would waste bandwidth.
const HARD_LIMIT: u64 = 16 * 1024 * 1024;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125
/// bytes or less and MUST NOT be fragmented."
const MAX_CONTROL_PAYLOAD: u64 = 125;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardEvent {
    /// A data message over the limit was dropped; the connection goes on.
    TooLarge,
}

enum State {
    /// Collecting a frame header (2 to 14 bytes).
    Header(BytesMut),
    /// Handing a whole frame, header and payload, to the codec as it is.
    Pass(u64),
    /// Dropping a payload.
    Discard(u64),
    /// Unmasking a fragment's payload into the message being joined.
    Collect {
        remaining: u64,
        mask: [u8; 4],
        pos: usize,
        fin: bool,
    },
}

/// A fragmented data message in progress.
struct Fragmented {
    opcode: u8,
    /// The unmasked payload so far; emptied once the message is too large.
    payload: BytesMut,
    /// Every fragment's declared length added up.
    declared: u64,
    too_large: bool,
}

pub struct FrameGuard<S> {
    inner: S,
    state: State,
    message: Option<Fragmented>,
    max_frame: u64,
    read_timeout: Duration,
    /// Armed while a frame or a fragmented message is incomplete.
    deadline: Option<Pin<Box<Sleep>>>,
    events: UnboundedSender<GuardEvent>,
    failed: bool,
}

/// A frame header, parsed.
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: u64,
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
            message: None,
            max_frame: max_frame as u64,
            read_timeout,
            deadline: None,
            events,
            failed: false,
        }
    }

    fn too_large(&self) {
        let _ = self.events.unbounded_send(GuardEvent::TooLarge);
    }

    /// What to do with the frame whose header is `raw`; `out` gets the bytes
    /// the codec may see.
    fn on_header(&mut self, raw: &[u8], out: &mut BytesMut) -> Result<State, PayloadError> {
        let h = parse_header(raw);
        if h.length > HARD_LIMIT {
            return Err(io_error("frame exceeds the hard size limit"));
        }
        if h.rsv != 0 {
            return Err(io_error("reserved bits set without an extension"));
        }
        let Some(mask) = h.mask else {
            return Err(io_error("client frames must be masked"));
        };
        match h.opcode {
            0x8..=0xA => {
                if h.length > MAX_CONTROL_PAYLOAD || !h.fin {
                    return Err(io_error(
                        "control frame longer than 125 bytes or fragmented",
                    ));
                }
                out.extend_from_slice(raw);
                Ok(State::Pass(h.length))
            }
            0x1 | 0x2 => {
                if self.message.is_some() {
                    return Err(io_error("data frame inside a fragmented message"));
                }
                let too_large = h.length > self.max_frame;
                if too_large {
                    self.too_large();
                }
                if h.fin {
                    if too_large {
                        return Ok(State::Discard(h.length));
                    }
                    out.extend_from_slice(raw);
                    return Ok(State::Pass(h.length));
                }
                self.message = Some(Fragmented {
                    opcode: h.opcode,
                    payload: BytesMut::new(),
                    declared: h.length,
                    too_large,
                });
                Ok(self.fragment_state(h.length, mask, h.fin))
            }
            0x0 => {
                let max = self.max_frame;
                let Some(message) = self.message.as_mut() else {
                    return Err(io_error("continuation frame with nothing to continue"));
                };
                message.declared = message.declared.saturating_add(h.length);
                if !message.too_large && message.declared > max {
                    message.too_large = true;
                    message.payload = BytesMut::new();
                    self.too_large();
                }
                Ok(self.fragment_state(h.length, mask, h.fin))
            }
            _ => Err(io_error("unknown opcode")),
        }
    }

    fn fragment_state(&mut self, length: u64, mask: [u8; 4], fin: bool) -> State {
        match &self.message {
            Some(m) if !m.too_large => State::Collect {
                remaining: length,
                mask,
                pos: 0,
                fin,
            },
            _ => {
                // The last fragment of a dropped message: nothing of it is
                // kept, so the message is over as soon as its payload is.
                if fin {
                    self.message = None;
                }
                State::Discard(length)
            }
        }
    }

    /// A fragment's payload is all in: on the last one, the joined message
    /// goes to the codec as one frame (masked with zeros, as the codec
    /// wants client frames masked).
    fn end_fragment(&mut self, fin: bool, out: &mut BytesMut) {
        if !fin {
            return;
        }
        let Some(message) = self.message.take() else {
            return;
        };
        if message.too_large {
            return;
        }
        let len = message.payload.len();
        out.put_u8(0x80 | message.opcode);
        if len < 126 {
            out.put_u8(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            out.put_u8(0x80 | 126);
            out.put_u16(len as u16);
        } else {
            out.put_u8(0x80 | 127);
            out.put_u64(len as u64);
        }
        out.put_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&message.payload);
    }

    /// Runs the chunk through the frame state machine and returns the bytes
    /// the codec may see.
    fn filter(&mut self, mut chunk: Bytes) -> Result<Bytes, PayloadError> {
        let mut out = BytesMut::new();
        loop {
            match &mut self.state {
                State::Header(header) => {
                    if chunk.is_empty() {
                        break;
                    }
                    let need = header_len(header).unwrap_or(2).saturating_sub(header.len());
                    let take = need.min(chunk.len());
                    header.extend_from_slice(&chunk.split_to(take));
                    let Some(total) = header_len(header) else {
                        continue;
                    };
                    if header.len() < total {
                        continue;
                    }
                    let raw = std::mem::take(header);
                    self.state = self.on_header(&raw, &mut out)?;
                }
                State::Pass(remaining) => {
                    let take = (*remaining).min(chunk.len() as u64) as usize;
                    out.extend_from_slice(&chunk.split_to(take));
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = State::Header(BytesMut::with_capacity(14));
                    }
                }
                State::Discard(remaining) => {
                    let take = (*remaining).min(chunk.len() as u64) as usize;
                    let _ = chunk.split_to(take);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = State::Header(BytesMut::with_capacity(14));
                    }
                }
                State::Collect {
                    remaining,
                    mask,
                    pos,
                    fin,
                } => {
                    let take = (*remaining).min(chunk.len() as u64) as usize;
                    let part = chunk.split_to(take);
                    if let Some(message) = self.message.as_mut() {
                        message.payload.extend(
                            part.iter()
                                .enumerate()
                                .map(|(i, b)| b ^ mask[(*pos + i) % 4]),
                        );
                    }
                    *pos += take;
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        let fin = *fin;
                        self.state = State::Header(BytesMut::with_capacity(14));
                        self.end_fragment(fin, &mut out);
                    }
                }
            }
            // A frame with an empty payload still has to be finished.
            let empty_payload = matches!(
                &self.state,
                State::Pass(0) | State::Discard(0) | State::Collect { remaining: 0, .. }
            );
            if chunk.is_empty() && !empty_payload {
                break;
            }
        }
        Ok(out.freeze())
    }

    fn mid_frame(&self) -> bool {
        self.message.is_some() || !matches!(&self.state, State::Header(h) if h.is_empty())
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

fn parse_header(raw: &[u8]) -> Header {
    let (length, ext) = match raw[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([raw[2], raw[3]])), 2),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[2..10]);
            (u64::from_be_bytes(b), 8)
        }
        n => (u64::from(n), 0),
    };
    let mask = (raw[1] & 0x80 != 0).then(|| {
        let mut m = [0u8; 4];
        m.copy_from_slice(&raw[2 + ext..6 + ext]);
        m
    });
    Header {
        fin: raw[0] & 0x80 != 0,
        rsv: raw[0] & 0x70,
        opcode: raw[0] & 0x0f,
        mask,
        length,
    }
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

    /// A frame as a browser sends it: FIN as given, masked with a real key.
    fn fragment(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut f = masked_frame(opcode, &[]);
        f.truncate(1);
        f[0] = if fin { 0x80 } else { 0 } | opcode;
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    /// Every item of the guard's output, until the stream ends or fails.
    async fn run_until_error(chunks: Vec<Vec<u8>>, max: usize) -> (Vec<u8>, bool) {
        let (tx, _rx) = mpsc::unbounded();
        let input = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let mut guard = FrameGuard::new(input, max, Duration::from_secs(5), tx);
        let mut out = Vec::new();
        while let Some(item) = guard.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, true),
            }
        }
        (out, false)
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
    async fn joins_fragments_into_one_frame_for_the_codec() {
        let mut bytes = fragment(false, 1, b"hello ");
        // A ping between fragments is allowed and goes through first.
        bytes.extend(fragment(true, 0x9, b"p"));
        bytes.extend(fragment(false, 0, b"wor"));
        bytes.extend(fragment(true, 0, b"ld"));
        // Split one byte at a time: headers and payloads arrive in pieces.
        let chunks = bytes.iter().map(|b| vec![*b]).collect();
        let (out, events) = run(chunks, 1024).await;
        let mut expected = fragment(true, 0x9, b"p");
        expected.extend(masked_frame(1, b"hello world"));
        assert_eq!(out, expected);
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn fragments_count_together_toward_the_limit() {
        let mut bytes = Vec::new();
        for _ in 0..5 {
            bytes.extend(fragment(
                false,
                if bytes.is_empty() { 1 } else { 0 },
                &[b'x'; 300],
            ));
        }
        bytes.extend(fragment(true, 0, &[b'x'; 300]));
        let next = masked_frame(1, b"after");
        let (out, events) = run(vec![bytes, next.clone()], 1024).await;
        assert_eq!(
            out, next,
            "nothing of the oversized message reaches the codec"
        );
        assert_eq!(events, vec![GuardEvent::TooLarge], "one answer per message");
    }

    #[tokio::test]
    async fn a_control_frame_over_125_bytes_fails_on_its_header_alone() {
        // A ping declaring 16 MiB - 1, and no payload at all: refused at once.
        let mut header = vec![0x89u8, 0x80 | 127];
        header.extend_from_slice(&((16u64 << 20) - 1).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        for opcode in [0x8u8, 0x9, 0xA] {
            header[0] = 0x80 | opcode;
            let (out, failed) = run_until_error(vec![header.clone()], 8192).await;
            assert!(failed && out.is_empty(), "opcode {opcode:#x}");
        }
        let (_, failed) = run_until_error(vec![fragment(true, 0x9, &[0; 126])], 8192).await;
        assert!(failed, "126 bytes is one too many");
        let (_, failed) = run_until_error(vec![fragment(false, 0x9, b"x")], 8192).await;
        assert!(failed, "a fragmented control frame");
        let ok = fragment(true, 0x9, &[0; 125]);
        assert_eq!(run_until_error(vec![ok.clone()], 8192).await, (ok, false));
    }

    #[tokio::test]
    async fn a_continuation_with_nothing_to_continue_fails() {
        let (_, failed) = run_until_error(vec![fragment(true, 0, b"orphan")], 8192).await;
        assert!(failed);
        let mut two_starts = fragment(false, 1, b"a");
        two_starts.extend(fragment(true, 1, b"b"));
        let (_, failed) = run_until_error(vec![two_starts], 8192).await;
        assert!(failed, "a new message inside a fragmented one");
        let (_, failed) = run_until_error(vec![fragment(true, 3, b"x")], 8192).await;
        assert!(failed, "an unknown opcode");
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
