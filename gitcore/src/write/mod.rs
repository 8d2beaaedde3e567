//! Writing history without a worktree: [`commit`] for the commit API, [`commit_graph`] for
//! commit-graph files.

pub mod commit;
pub mod commit_graph;
