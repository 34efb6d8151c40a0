//! runr-agent's library part: the Kata agent protocol, the conversions from its messages to
//! oci-spec types, the services and the server, all testable without the binary.
//!
//! The container work behind the services is a [`backend::Backend`]: [`containers::Containers`]
//! on runr's supervisor (what the binary serves), or [`backend::Unwired`], which answers the
//! container calls UNIMPLEMENTED. [`guest`] is what the agent does as PID 1 of a guest.

pub mod address;
pub mod backend;
pub mod containers;
pub mod convert;
pub mod error;
pub mod guest;
pub mod logging;
pub mod net;
pub mod server;
pub mod service;

/// Code generated from proto/ by build.rs.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
pub mod protocols {
    include!(concat!(env!("OUT_DIR"), "/mod.rs"));
}
