//! Repository rows: lookups, listings and the soft-delete aware queries.

use entity::{collaborator, repository};
use sea_orm::sea_query::{Condition, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::auth::{Access, Scopes};

/// The live (not deleted) repository `name` of `org_id`, compared without case.
pub async fn find_live(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    name: &str,
) -> Result<Option<repository::Model>, DbErr> {
    repository::Entity::find()
        .filter(repository::Column::OrgId.eq(org_id))
        .filter(repository::Column::NameLower.eq(name.to_lowercase()))
        .filter(repository::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// A repository by id, deleted or not.
pub async fn find_by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<repository::Model>, DbErr> {
    repository::Entity::find_by_id(id).one(db).await
}

/// What a listing may show.
#[derive(Debug, Clone, Copy)]
pub struct ListFor<'a> {
    /// The caller, if authenticated: their owned and collaborated repositories.
    pub user_id: Option<Uuid>,
    /// Restrict to this org, and include its public repositories.
    pub org_id: Option<Uuid>,
    /// A restricted token: only repositories these scopes can read (public ones stay visible).
    pub scopes: Option<&'a Scopes>,
}

/// Lists live repositories visible under `for_`, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    for_: ListFor<'_>,
    limit: u64,
    offset: u64,
) -> Result<Vec<repository::Model>, DbErr> {
    let mut visible = Condition::any();
    if let Some(user) = for_.user_id {
        let mut mine = Condition::any()
            .add(repository::Column::OwnerId.eq(user))
            .add(
                repository::Column::Id.in_subquery(
                    Query::select()
                        .column(collaborator::Column::RepoId)
                        .from(collaborator::Entity)
                        .and_where(collaborator::Column::UserId.eq(user))
                        .to_owned(),
                ),
            );
        if let Some(scopes) = for_.scopes {
            let mut allowed = Condition::any();
            let mut any = false;
            for (org, name) in scopes.repo_filters(Access::Read) {
                any = true;
                let mut c = Condition::all().add(repository::Column::OrgId.eq(org));
                if let Some(name) = name {
                    c = c.add(repository::Column::NameLower.eq(name.to_owned()));
                }
                allowed = allowed.add(c);
            }
            mine = if any {
                Condition::all().add(mine).add(allowed)
            } else {
                // A restricted token with no usable grant sees none of the user's private repos.
                Condition::all().add(repository::Column::Id.is_null())
            };
        }
        visible = visible.add(mine);
    }
    if for_.org_id.is_some() {
        visible = visible.add(repository::Column::Visibility.eq("public"));
    }
    let mut q = repository::Entity::find()
        .filter(repository::Column::DeletedAt.is_null())
        .filter(visible);
    if let Some(org) = for_.org_id {
        q = q.filter(repository::Column::OrgId.eq(org));
    }
    q.order_by_asc(repository::Column::CreatedAt)
        .order_by_asc(repository::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Every repository, for admins; deleted ones only when asked.
pub async fn list_all(
    db: &impl ConnectionTrait,
    include_deleted: bool,
    limit: u64,
    offset: u64,
) -> Result<Vec<repository::Model>, DbErr> {
    let mut q = repository::Entity::find();
    if !include_deleted {
        q = q.filter(repository::Column::DeletedAt.is_null());
    }
    q.order_by_asc(repository::Column::CreatedAt)
        .order_by_asc(repository::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}
