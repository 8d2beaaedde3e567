//! Authorization on a repository: roles, visibility and token scopes together.
//!
//! - Read: public repositories to anyone; private ones to collaborators (and the owner) whose
//!   token scopes allow it. A caller who may not read gets 404, never 403.
//! - Write: writer or owner, and a token scope that allows writing. Admin: owner, same scopes.
//! - Anonymous callers get 401 for anything beyond reading.

use entity::repository;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::error::ApiError;
use crate::auth::{Access, Caller};
use crate::store::{self, Role};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading the repository.
    Read,
    /// Writing to it (push, branches).
    Write,
    /// Settings, collaborators, events, archive, delete.
    Admin,
}

/// A repository the caller was allowed to use, with their role on it.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The repository row.
    pub repo: repository::Model,
    /// The caller's role, if any.
    pub role: Option<Role>,
}

/// The caller's role on `repo`: the owner is always `owner`, others come from collaborators.
pub async fn role_of(
    db: &DatabaseConnection,
    repo: &repository::Model,
    user_id: Uuid,
) -> Result<Option<Role>, ApiError> {
    if repo.owner_id == user_id {
        return Ok(Some(Role::Owner));
    }
    Ok(store::collaborators::role_of(db, repo.id, user_id).await?)
}

/// Loads the live repository `org_id/name` and checks that `caller` may do what `need` says.
pub async fn load(
    db: &DatabaseConnection,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    need: Need,
) -> Result<Authorized, ApiError> {
    if need != Need::Read {
        caller.require()?;
    }
    let repo = store::repos::find_live(db, org_id, name)
        .await?
        .ok_or_else(not_found)?;
    authorize(db, caller, repo, need).await
}

/// `load(.., Need::Read)` for reads of a repository's content (git data, commits, compare,
/// blame, archives, and git's own reads), with the repository row and the caller's role from
/// the [`AccessCache`](crate::access_cache) when it has them fresh.
pub async fn load_content(
    state: &crate::state::AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
) -> Result<Authorized, ApiError> {
    let (row, role) = cached_row_and_role(state, org_id, name, caller.0.as_ref()).await?;
    decide(caller, row.ok_or_else(not_found)?, role, Need::Read)
}

/// The live repository `name` of `org_id` and `identity`'s role on it, from the access cache
/// when fresh, else from the database (and kept).
pub async fn cached_row_and_role(
    state: &crate::state::AppState,
    org_id: Uuid,
    name: &str,
    identity: Option<&crate::auth::Identity>,
) -> Result<(Option<repository::Model>, Option<Role>), ApiError> {
    let name_lower = name.to_lowercase();
    let row = match state.access.repo(org_id, &name_lower) {
        Some(row) => row,
        None => {
            let generation = crate::access_cache::generation();
            let Some(row) = store::repos::find_live(&state.db, org_id, name).await? else {
                return Ok((None, None));
            };
            state.access.put_repo(generation, &row);
            row
        }
    };
    let role = match identity {
        None => None,
        Some(id) if id.user_id == row.owner_id => Some(Role::Owner),
        Some(id) => match state.access.role(row.id, id.user_id) {
            Some(role) => role,
            None => {
                let generation = crate::access_cache::generation();
                let role = role_of(&state.db, &row, id.user_id).await?;
                state.access.put_role(generation, row.id, id.user_id, role);
                role
            }
        },
    };
    Ok((Some(row), role))
}

/// Checks that `caller` may do what `need` says on `repo`.
pub async fn authorize(
    db: &DatabaseConnection,
    caller: &Caller,
    repo: repository::Model,
    need: Need,
) -> Result<Authorized, ApiError> {
    let role = match caller.0.as_ref() {
        Some(id) => role_of(db, &repo, id.user_id).await?,
        None => None,
    };
    decide(caller, repo, role, need)
}

/// Whether `caller`, whose role on `repo` is `role`, may do what `need` says.
pub fn decide(
    caller: &Caller,
    repo: repository::Model,
    role: Option<Role>,
    need: Need,
) -> Result<Authorized, ApiError> {
    let identity = caller.0.as_ref();
    let scope_allows = |access: Access| {
        identity
            .and_then(|i| i.scopes.as_ref())
            .is_none_or(|s| s.allows(repo.org_id, &repo.name, access))
    };
    let public = repo.visibility == "public";
    let can_read = public || (role.is_some() && scope_allows(Access::Read));
    if !can_read {
        return Err(not_found());
    }
    if need != Need::Read {
        let needed = if need == Need::Admin {
            Role::Owner
        } else {
            Role::Writer
        };
        if role.is_none_or(|r| r < needed) {
            return Err(ApiError::forbidden(format!(
                "this needs the {} role on the repository",
                needed.as_str()
            )));
        }
        if !scope_allows(Access::Write) {
            return Err(ApiError::forbidden(format!(
                "this token's scopes do not allow writing to {}/{}",
                repo.org_id, repo.name
            )));
        }
    }
    Ok(Authorized { repo, role })
}

/// Refuses changes to an archived repository.
pub fn ensure_not_archived(repo: &repository::Model) -> Result<(), ApiError> {
    if repo.archived {
        return Err(ApiError::forbidden(
            "the repository is archived and read-only",
        ));
    }
    Ok(())
}

/// The 404 for a repository that does not exist or may not be seen.
pub fn not_found() -> ApiError {
    ApiError::not_found("repository not found")
}

/// Whether `caller`'s token scopes allow writing to `repo` (tokens without `orbit:` scopes do).
pub fn scope_allows_write(caller: &Caller, repo: &repository::Model) -> bool {
    caller.0.as_ref().is_some_and(|i| {
        i.scopes
            .as_ref()
            .is_none_or(|s| s.allows(repo.org_id, &repo.name, Access::Write))
    })
}

/// Whether `caller` may write to the repository of `a`: writer or owner, with a token that
/// allows writing.
pub fn may_write(caller: &Caller, a: &Authorized) -> bool {
    a.role.is_some_and(|r| r >= Role::Writer) && scope_allows_write(caller, &a.repo)
}
