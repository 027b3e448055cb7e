//! Response bodies of the embedder's own type that the hyper-stack tests share.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

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
