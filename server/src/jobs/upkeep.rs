//! `repo_upkeep`: consolidates a repository's packs once a push leaves more than
//! [`CONSOLIDATE_ABOVE_PACKS`], and removes what killed processes left (temporary packs of a
//! consolidation, quarantines whose push is gone). Queued by pushes; as a job, a consolidation
//! whose server died runs again once its lease expires, and one that keeps failing ends in
//! `/admin/jobs/failed`.

use entity::job;

use super::{JobError, Outcome};
use crate::state::AppState;
use crate::store;

/// Packs a repository may collect (one per push) before they are merged into one.
pub const CONSOLIDATE_ABOVE_PACKS: usize = 32;

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
        gitcore::storage::consolidate(&path, CONSOLIDATE_ABOVE_PACKS)
    })
    .await
    .map_err(|e| JobError::transient(format!("upkeep task: {e}")))?;
    match result {
        Ok(done) if done.skipped_locked => {
            tracing::warn!(repo = %repo_id, "upkeep skipped: another live process holds the consolidation lock; will retry");
            Err(JobError::transient(
                "another process is consolidating this repository's packs",
            ))
        }
        Ok(done) => {
            if done.packs_merged > 0 || done.stale_removed > 0 {
                tracing::info!(repo = %repo_id, packs = done.packs_merged, objects = done.objects,
                    stale_files = done.stale_removed, "repository upkeep done");
            }
            Ok(Some(serde_json::json!({
                "packsBefore": done.packs_before,
                "packsMerged": done.packs_merged,
                "objects": done.objects,
                "staleFilesRemoved": done.stale_removed,
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
