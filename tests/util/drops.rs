//! Values of the embedder's whose `Drop` panics, for the probes of what the crate drops.
#![allow(dead_code)]

/// Panics when dropped (quieted by `quiet::quiet_panics`: the message ends in "panics").
pub(crate) struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a value of the embedder's panics");
    }
}
