//! Admission: the request object, the all-or-nothing bundle, and the refusal.

mod bundle;
mod refusal;
mod request;

pub use bundle::Admitted;
pub use refusal::{Refusal, RefusalReason};
pub use request::RequestObject;
