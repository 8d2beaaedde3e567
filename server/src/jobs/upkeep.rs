//! `repo_upkeep`: consolidates a repository's packs once a push leaves more than
//! [`CONSOLIDATE_ABOVE_PACKS`], removes what killed processes left (temporary packs of a
//! consolidation, quarantines whose push is gone), and rewrites the commit-graph (also queued by
//! a push of [`GRAPH_AFTER_COMMITS`] new commits or more) and records the pack a clone is
//! answered with as stored (`gitcore::upload_pack::reuse`). Queued by pushes; as a job, a consolidation
//! whose server died runs again once its lease expires, and one that keeps failing ends in
//! `/admin/jobs/failed`.

use entity::job;

use super::{JobError, Outcome};
use crate::state::AppState;
use crate::store;

/// Packs a repository may collect (one per push) before they are merged into one.
pub const CONSOLIDATE_ABOVE_PACKS: usize = 32;

/// A push bringing this many new commits queues an upkeep, for the commit-graph.
pub const GRAPH_AFTER_COMMITS: usize = 500;

/// Runs one upkeep.
pub async fn run(state: &AppState, job: &job::Model) -> Outcome {
    let repo_id = job
        .repo_id
        .ok_or_else(|| JobError::permanent("the job names no repository"))?;
    let Some(repo) = store::repos::find_by_id(&state.db, repo_id)
        .await
        .map_err(|e| JobError::transient(format!("metadata store: {e}")))?
    else {
        return Ok(Some(
            serde_json::json!({"skipped": "the repository is gone"}),
        ));
    };
    let path = state.config.storage_root.join(&repo.storage_path);
    let permit = state
        .git_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| JobError::transient(e.to_string()))?;
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let done = gitcore::storage::consolidate(&path, CONSOLIDATE_ABOVE_PACKS)?;
        // The graph is a cache: failing to write it fails nothing else.
        let graph = if done.skipped_locked {
            None
        } else {
            match gitcore::storage::open(&path)
                .map_err(|e| gitcore::error_chain(&e))
                .and_then(|r| {
                    gitcore::write::commit_graph::write(&r).map_err(|e| gitcore::error_chain(&e))
                }) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "could not write the commit-graph");
                    None
                }
            }
        };
        // Also a cache: the pack a clone can be answered with as stored.
        let reuse = if done.skipped_locked {
            None
        } else {
            let interrupt = std::sync::atomic::AtomicBool::new(false);
            match gitcore::upload_pack::reuse::mark(&path, &interrupt) {
                Ok(marked) => Some(format!("{marked:?}")),
                Err(e) => {
                    tracing::warn!(error = %gitcore::error_chain(&e), "could not record the clone pack");
                    None
                }
            }
        };
        Ok::<_, gitcore::storage::ConsolidateError>((done, graph, reuse))
    })
    .await
    .map_err(|e| JobError::transient(format!("upkeep task: {e}")))?;
    match result {
        Ok((done, _, _)) if done.skipped_locked => {
            tracing::warn!(repo = %repo_id, "upkeep skipped: another live process holds the consolidation lock; will retry");
            Err(JobError::transient(
                "another process is consolidating this repository's packs",
            ))
        }
        Ok((done, graph, reuse)) => {
            if done.packs_merged > 0 || done.stale_removed > 0 {
                tracing::info!(repo = %repo_id, packs = done.packs_merged, objects = done.objects,
                    stale_files = done.stale_removed, "repository upkeep done");
            }
            Ok(Some(serde_json::json!({
                "packsBefore": done.packs_before,
                "packsMerged": done.packs_merged,
                "objects": done.objects,
                "staleFilesRemoved": done.stale_removed,
                "commitGraphCommits": graph,
                "clonePack": reuse,
            })))
        }
        Err(e) => {
            let message = gitcore::error_chain(&e);
            tracing::warn!(repo = %repo_id, error = %message, "repository upkeep failed");
            Err(JobError::transient(format!(
                "pack consolidation failed: {message}"
            )))
        }
    }
}
