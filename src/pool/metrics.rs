//! Pool policy and figures.

/// What the pool does when every pooled context is in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exhaustion {
    /// Allocate a context on the heap and free it on release, like Bun's `HiveArray` fallback.
    #[default]
    Spill,
    /// Refuse the request with `503 Service Unavailable`.
    Refuse,
}

/// A snapshot of a context pool's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolMetrics {
    /// Contexts the pool keeps for reuse at most.
    pub capacity: usize,
    /// Contexts checked out now, pooled and spilled.
    pub in_use: usize,
    /// The most contexts ever checked out at once.
    pub high_water: usize,
    /// Pooled contexts allocated so far (at most `capacity`).
    pub allocated: usize,
    /// Checkouts served from the heap because the pool was exhausted.
    pub spills: u64,
    /// Checkouts refused because the pool was exhausted.
    pub refusals: u64,
    /// Contexts whose [`Recycle::recycle`](crate::Recycle::recycle) panicked: each was freed
    /// and its slot given back, so the pool kept its capacity.
    pub recycle_panics: u64,
}
