//! Values of the embedder's whose `Drop` panics, for the probes of what the crate drops.
#![allow(dead_code)]

/// Panics when dropped (quieted by `quiet::quiet_panics`: the message ends in "panics").
pub(crate) struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a value of the embedder's panics");
    }
}

/// Counts its drops in a shared counter: whether what a listener captured was let go (`Arc`, so
/// a server thread's handler can hold one the test reads).
pub(crate) struct Freed(pub(crate) std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Freed {
    /// A marker and the counter it bumps when dropped.
    pub(crate) fn new() -> (Freed, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let count = std::sync::Arc::default();
        (Freed(std::sync::Arc::clone(&count)), count)
    }
}

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
