//! The request context of the allocation probes (`#[path = "util/word_ctx.rs"] mod word_ctx;`).

/// A context that owns no heap memory (one word): a spilled one costs exactly its box.
#[derive(Default)]
pub(crate) struct Ctx(pub(crate) u64);

impl reqguard::Recycle for Ctx {
    fn recycle(&mut self) {
        self.0 = 0;
    }
}
