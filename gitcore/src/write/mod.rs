//! Writing history without a worktree: [`commit`] for the commit API.

pub mod commit;
