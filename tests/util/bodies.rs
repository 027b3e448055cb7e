//! Response bodies of the embedder's own type that the hyper-stack tests share.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A response body of the embedder's own type: `data` as frames, an exact `size_hint` of
/// `hint` (the length hyper frames the answer by; none: hyper knows no length, so it goes
/// chunked unless the handler sets its own `content-length`), and `is_end_stream` true once
/// empty only if `says_end` (else, as `Body`'s default, it never says so: a stream that learns
/// its end by polling).
pub struct Hinted {
    pub data: VecDeque<Bytes>,
    pub hint: Option<u64>,
    pub says_end: bool,
}

impl Hinted {
    /// `frames` in order, with `hint` and `says_end` as on [`Hinted`].
    pub fn of(frames: &[&'static str], hint: Option<u64>, says_end: bool) -> Hinted {
        Hinted {
            data: frames
                .iter()
                .map(|f| Bytes::from_static(f.as_bytes()))
                .collect(),
            hint,
            says_end,
        }
    }
}

impl Body for Hinted {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.data.pop_front().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.says_end && self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A body of an exact length (its `size_hint`): `first` at once, the rest as the test
/// sends it.
pub struct Gated {
    first: Option<Bytes>,
    rest: UnboundedReceiver<Bytes>,
    left: u64,
}

impl Gated {
    pub fn new(first: &'static [u8], total: u64) -> (Gated, UnboundedSender<Bytes>) {
        let (tx, rest) = unbounded_channel();
        let first = Some(Bytes::from_static(first));
        (
            Gated {
                first,
                rest,
                left: total,
            },
            tx,
        )
    }
}

impl Body for Gated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let data = match self.first.take() {
            Some(data) => data,
            None => match self.rest.poll_recv(cx) {
                Poll::Ready(Some(data)) => data,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        self.left -= data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
