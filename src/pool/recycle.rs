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
    /// Clears the context for its next request.
    fn recycle(&mut self);
}

impl Recycle for () {
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
