//! Integration tests: a real Orbit server on a real port, driven over HTTP (and the binary
//! itself for the CLI). SQLite by default; PostgreSQL when `ORBIT_TEST_DATABASE_URL` is set, with
//! a fresh database per test, always through the real migrations.

mod access_cache;
mod archive;
mod auth;
mod blame;
mod cli;
mod commits_api;
mod common;
mod compare;
mod crash;
mod git;
mod git_abuse;
mod git_data;
mod git_refs;
mod jobs;
mod limits;
mod metrics;
mod mirror;
mod openapi;
mod permissions;
mod protection;
mod pulls;
mod repos;
mod schemathesis;
mod security;
mod shallow;
mod stream;
mod tls;
mod upkeep;
