//! Server core configuration.

use crate::pool::Exhaustion;
use crate::wrapper::DowngradePolicy;

/// How a [`ServerCore`](crate::ServerCore) pools contexts and when it downgrades its wrapper.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, DowngradePolicy, Exhaustion};
///
/// let config = Config::default()
///     .pool_capacity(256)
///     .exhaustion(Exhaustion::Refuse)
///     .downgrade(DowngradePolicy::OnStop)
///     .prewarm(64);
/// assert_eq!(config.get_pool_capacity(), 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pool_capacity: usize,
    exhaustion: Exhaustion,
    downgrade: DowngradePolicy,
    prewarm: usize,
}

impl Default for Config {
    /// 1,024 pooled contexts that spill when exhausted, downgrade on drain, no prewarm.
    fn default() -> Self {
        Config {
            pool_capacity: 1024,
            exhaustion: Exhaustion::Spill,
            downgrade: DowngradePolicy::OnDrain,
            prewarm: 0,
        }
    }
}

impl Config {
    /// How many contexts the pool keeps for reuse (Bun's `HiveArray` holds 2,048).
    pub fn pool_capacity(mut self, capacity: usize) -> Self {
        self.pool_capacity = capacity;
        self
    }

    /// What to do when every pooled context is in use.
    pub fn exhaustion(mut self, exhaustion: Exhaustion) -> Self {
        self.exhaustion = exhaustion;
        self
    }

    /// When the wrapper is downgraded from strong to weak.
    pub fn downgrade(mut self, policy: DowngradePolicy) -> Self {
        self.downgrade = policy;
        self
    }

    /// How many pooled contexts to allocate up front (capped at the capacity).
    pub fn prewarm(mut self, count: usize) -> Self {
        self.prewarm = count;
        self
    }

    /// The pool capacity.
    pub fn get_pool_capacity(&self) -> usize {
        self.pool_capacity
    }

    /// The exhaustion policy.
    pub fn get_exhaustion(&self) -> Exhaustion {
        self.exhaustion
    }

    /// The downgrade policy.
    pub fn get_downgrade(&self) -> DowngradePolicy {
        self.downgrade
    }

    /// How many contexts are allocated up front.
    pub fn get_prewarm(&self) -> usize {
        self.prewarm
    }
}
