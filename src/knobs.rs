//! The rules a server's knobs are checked by, one home for both stacks: the mio server's
//! `Limits::validate` and the hyper adapter's `Options` give their knobs to [`check`], so an
//! absurd value is refused the same way, with the same words, on either (QA embed25-3: hyper
//! took `max_head(0)` and zero timeouts that mio refused).

use std::time::Duration;

use crate::MAX_TIMEOUT;

/// The smallest `max_head` accepted: room for a request line and a `Host` header.
pub(crate) const MIN_HEAD: usize = 64;

/// A server's knobs, as the rules see them.
pub(crate) struct Knobs<'a> {
    /// Buffer sizes, each at most `isize::MAX` (no buffer can be larger).
    pub(crate) sizes: &'a [(&'static str, usize)],
    /// The longest request head, at least [`MIN_HEAD`].
    pub(crate) max_head: usize,
    /// Connections open at once: at least one.
    pub(crate) max_connections: usize,
    /// Timeouts, each at most [`MAX_TIMEOUT`], and above zero unless zero is allowed (`true`).
    pub(crate) timeouts: &'a [(&'static str, Duration, bool)],
}

/// The first knob out of range and what is wrong with it, e.g. `("max_head", "is below
/// MIN_HEAD (64 bytes)")`.
pub(crate) type OutOfRange = (&'static str, &'static str);

/// Checks that `knobs` can serve a request.
pub(crate) fn check(knobs: &Knobs<'_>) -> Result<(), OutOfRange> {
    for &(knob, size) in knobs.sizes {
        if size > isize::MAX as usize {
            return Err((knob, "is larger than any buffer can be"));
        }
    }
    if knobs.max_head < MIN_HEAD {
        return Err(("max_head", "is below MIN_HEAD (64 bytes)"));
    }
    if knobs.max_connections == 0 {
        return Err(("max_connections", "is zero"));
    }
    for &(knob, timeout, zero_ok) in knobs.timeouts {
        if timeout.is_zero() && !zero_ok {
            return Err((knob, "is zero"));
        }
        if timeout > MAX_TIMEOUT {
            return Err((knob, "is over MAX_TIMEOUT (one year)"));
        }
    }
    Ok(())
}
