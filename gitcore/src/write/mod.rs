//! Writing history without a worktree: [`commit`] for the commit API, [`commit_graph`] for
//! commit-graph files, [`pack_index`] for the `.idx` of a pack received by a push.

pub mod commit;
pub mod commit_graph;
pub mod pack_index;
