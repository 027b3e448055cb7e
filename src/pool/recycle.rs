//! What a pooled context must do between two requests.

/// A per-request context that a pool can reuse.
///
/// `Default` makes a fresh one when the pool grows or spills; [`recycle`](Recycle::recycle)
/// clears one for its next request. Keep buffers' capacity in `recycle`: that is what makes a
/// warm pool allocation-free.
///
/// # Examples
///
/// ```
/// use reqguard::Recycle;
///
/// #[derive(Default)]
/// struct HttpContext {
///     url: String,
///     body: Vec<u8>,
/// }
///
/// impl Recycle for HttpContext {
///     fn recycle(&mut self) {
///         self.url.clear();
///         self.body.clear();
///     }
/// }
/// ```
pub trait Recycle: Default + 'static {
    /// Sealed: whether [`recycle`](Recycle::recycle) does nothing, so that a pooled slot may
    /// go from one request to the next without it (the mio server's pipelined requests,
    /// `Guarded`'s renewal). `false` for every context but `()`: nothing outside the crate can
    /// override it (its type is one no one outside the crate can name).
    #[doc(hidden)]
    const SKIPPED: seal::NothingToRecycle = seal::NothingToRecycle(false);

    /// Clears the context for its next request.
    fn recycle(&mut self);
}

mod seal {
    /// Seals [`Recycle::SKIPPED`](super::Recycle::SKIPPED).
    #[allow(unreachable_pub)] // unnameable outside the crate: that is what seals the const
    #[derive(Clone, Copy, Debug)]
    pub struct NothingToRecycle(pub(crate) bool);
}

impl Recycle for () {
    const SKIPPED: seal::NothingToRecycle = seal::NothingToRecycle(true);

    fn recycle(&mut self) {}
}

impl<T: 'static> Recycle for Vec<T> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl Recycle for String {
    fn recycle(&mut self) {
        self.clear();
    }
}
