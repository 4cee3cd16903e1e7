//! Who is calling, and what they may do.
//!
//! [`Caller`] is established from request headers by the configured
//! [`AuthMode`](crate::config::AuthMode), exactly as Gnocchi's auth helpers do;
//! [`Policy`] then decides each action with oslo.policy's rule language, so an
//! operator's Gnocchi policy file keeps its meaning here.

mod identity;
mod policy;

pub use identity::{Caller, IdentityError};
pub use policy::{Policy, PolicyError, Target};
