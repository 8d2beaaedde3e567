//! sea-orm entities of Orbit's metadata store, one module per table.
//!
//! The schema itself lives in `migration/`; these types mirror it. They are never serialised to
//! clients directly: the server maps them to its own DTOs.

pub mod audit_event;
pub mod branch_protection;
pub mod collaborator;
pub mod job;
pub mod pull_request;
pub mod repository;
pub mod webhook;
pub mod webhook_delivery;
