//! The schema of Orbit's metadata store, as sea-orm-migration migrations.
//!
//! Migrations use string identifiers and never import `entity/`, so an old migration keeps
//! meaning what it meant when it was written. They run on startup and with `orbit migrate`, on
//! SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_repositories;
mod m20261122_000002_create_collaborators;
mod m20261122_000003_create_audit_events;
mod m20261204_000004_create_pull_requests;
mod m20261206_000005_create_jobs_and_hooks;
mod m20261206_000006_create_branch_protections;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_repositories::Migration),
            Box::new(m20261122_000002_create_collaborators::Migration),
            Box::new(m20261122_000003_create_audit_events::Migration),
            Box::new(m20261204_000004_create_pull_requests::Migration),
            Box::new(m20261206_000005_create_jobs_and_hooks::Migration),
            Box::new(m20261206_000006_create_branch_protections::Migration),
        ]
    }
}
