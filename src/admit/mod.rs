//! Admission: the request object, the all-or-nothing bundle, and the refusal.

mod bundle;
#[cfg(feature = "server")]
mod held;
mod outcome;
mod refusal;
mod request;
pub(crate) mod status;

pub use bundle::Admitted;
pub(crate) use bundle::Parts;
#[cfg(feature = "server")]
pub use held::GuardedHeld;
#[cfg(feature = "server")]
pub(crate) use held::KeptBundle;
pub use outcome::{Outcome, OutcomeCounts};
pub use refusal::{Refusal, RefusalReason};
pub use request::RequestObject;
