//! Admission: the request object, the all-or-nothing bundle, and the refusal.

mod bundle;
mod outcome;
mod refusal;
mod request;
pub(crate) mod status;

pub use bundle::Admitted;
pub(crate) use bundle::Parts;
pub use outcome::{Outcome, OutcomeCounts};
pub use refusal::{Refusal, RefusalReason};
pub use request::RequestObject;
