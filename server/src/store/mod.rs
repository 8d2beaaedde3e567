//! Small query and mutation functions over the metadata store, used by the handlers.
//!
//! Functions take `&impl ConnectionTrait` so they work on the pool and inside transactions.

pub mod audit;
pub mod collaborators;
pub mod hooks;
pub mod jobs;
pub mod protection;
pub mod pulls;
pub mod repos;

/// A role on a repository, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May read.
    Reader,
    /// May read and write.
    Writer,
    /// May do anything, including settings, collaborators, archive and delete.
    Owner,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}
