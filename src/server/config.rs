//! Server core configuration.

use std::fmt;

use crate::pool::Exhaustion;
use crate::wrapper::DowngradePolicy;

/// How a [`ServerCore`](crate::ServerCore) pools contexts and when it downgrades its wrapper.
///
/// Setters are named `with_*` and getters are plain (`pool_capacity()`), per the Rust API
/// guidelines (C-GETTER). Nothing is allocated up front except what
/// [`with_prewarm`](Config::with_prewarm) asks for: the pool's free list grows as contexts are
/// first used.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, DowngradePolicy, Exhaustion};
///
/// let config = Config::default()
///     .with_pool_capacity(256)?
///     .with_exhaustion(Exhaustion::Refuse)
///     .with_downgrade(DowngradePolicy::OnStop)
///     .with_prewarm(64);
/// assert_eq!(config.pool_capacity(), 256);
/// # Ok::<(), reqguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pool_capacity: usize,
    exhaustion: Exhaustion,
    downgrade: DowngradePolicy,
    prewarm: usize,
}

/// A [`Config`] value that was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The pool capacity is larger than [`Config::MAX_POOL_CAPACITY`].
    PoolCapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest accepted.
        max: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::PoolCapacityTooLarge { requested, max } => write!(
                f,
                "pool capacity {requested} is larger than the maximum of {max} contexts"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

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
    /// The largest pool capacity accepted: 1,048,576 contexts (Bun's `HiveArray` holds 2,048).
    pub const MAX_POOL_CAPACITY: usize = 1 << 20;

    /// How many contexts the pool keeps for reuse, at most. Nothing is reserved now.
    ///
    /// # Errors
    ///
    /// [`ConfigError::PoolCapacityTooLarge`] above [`Config::MAX_POOL_CAPACITY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ConfigError};
    ///
    /// assert_eq!(Config::default().with_pool_capacity(64).unwrap().pool_capacity(), 64);
    /// assert!(matches!(
    ///     Config::default().with_pool_capacity(usize::MAX),
    ///     Err(ConfigError::PoolCapacityTooLarge { .. })
    /// ));
    /// ```
    pub fn with_pool_capacity(mut self, capacity: usize) -> Result<Self, ConfigError> {
        if capacity > Self::MAX_POOL_CAPACITY {
            return Err(ConfigError::PoolCapacityTooLarge {
                requested: capacity,
                max: Self::MAX_POOL_CAPACITY,
            });
        }
        self.pool_capacity = capacity;
        Ok(self)
    }

    /// What to do when every pooled context is in use.
    pub fn with_exhaustion(mut self, exhaustion: Exhaustion) -> Self {
        self.exhaustion = exhaustion;
        self
    }

    /// When the wrapper is downgraded from strong to weak.
    pub fn with_downgrade(mut self, policy: DowngradePolicy) -> Self {
        self.downgrade = policy;
        self
    }

    /// How many pooled contexts to allocate up front (capped at the capacity), each with its
    /// abort signal beside it (every pooled slot holds one from the moment it is made): the
    /// first requests allocate neither. The contexts are made (`C::default`, your code) by the
    /// server core's constructor: a `Default` that panics makes the constructor panic, and
    /// nothing is kept (the wrapper handle it was given goes with the unwinding).
    pub fn with_prewarm(mut self, count: usize) -> Self {
        self.prewarm = count;
        self
    }

    /// The pool capacity.
    pub fn pool_capacity(&self) -> usize {
        self.pool_capacity
    }

    /// The exhaustion policy.
    pub fn exhaustion(&self) -> Exhaustion {
        self.exhaustion
    }

    /// The downgrade policy.
    pub fn downgrade(&self) -> DowngradePolicy {
        self.downgrade
    }

    /// How many contexts are allocated up front (at most the capacity).
    pub fn prewarm(&self) -> usize {
        self.prewarm.min(self.pool_capacity)
    }
}
