//! Pull request rows.

use chrono::Utc;
use entity::pull_request;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

/// A pull request's status.
pub const OPEN: &str = "open";
/// Closed without merging.
pub const CLOSED: &str = "closed";
/// Merged.
pub const MERGED: &str = "merged";

/// What a new pull request holds.
#[derive(Debug, Clone)]
pub struct New {
    /// The repository.
    pub repo_id: Uuid,
    /// Source branch name.
    pub source_branch: String,
    /// Target branch name.
    pub target_branch: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Author.
    pub author_id: Uuid,
    /// Source tip.
    pub head_sha: String,
    /// Target tip.
    pub base_sha: String,
}

/// Inserts a pull request with the next number of its repository (`max + 1`), in one
/// `INSERT ... SELECT` statement, so that on SQLite the transaction takes the write lock at once.
/// Two concurrent inserts on PostgreSQL may still pick the same number: the unique index refuses
/// one, and the caller retries ([`is_number_collision`]).
pub async fn insert(db: &impl ConnectionTrait, new: New) -> Result<pull_request::Model, DbErr> {
    use pull_request::Column as C;
    use sea_orm::sea_query::{Func, Query, SimpleExpr};
    let id = Uuid::new_v4();
    let now = Utc::now();
    let next: SimpleExpr = Expr::expr(Func::coalesce([
        Expr::col(C::Number).max(),
        Expr::val(0i64).into(),
    ]))
    .add(1i64);
    let select = Query::select()
        .expr(Expr::val(id))
        .expr(Expr::val(new.repo_id))
        .expr(next)
        .expr(Expr::val(new.source_branch))
        .expr(Expr::val(new.target_branch))
        .expr(Expr::val(new.title))
        .expr(Expr::val(new.description))
        .expr(Expr::val(OPEN))
        .expr(Expr::val(new.author_id))
        .expr(Expr::val(new.head_sha))
        .expr(Expr::val(new.base_sha))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .from(pull_request::Entity)
        .and_where(Expr::col(C::RepoId).eq(new.repo_id))
        .to_owned();
    let insert = Query::insert()
        .into_table(pull_request::Entity)
        .columns([
            C::Id,
            C::RepoId,
            C::Number,
            C::SourceBranch,
            C::TargetBranch,
            C::Title,
            C::Description,
            C::Status,
            C::AuthorId,
            C::HeadSha,
            C::BaseSha,
            C::CreatedAt,
            C::UpdatedAt,
        ])
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    db.execute(db.get_database_backend().build(&insert)).await?;
    pull_request::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the inserted pull request".into()))
}

/// Whether `e` is a collision on the per-repository number (rather than on the one-open-pull
/// request-per-pair index).
pub fn is_number_collision(e: &DbErr) -> bool {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(msg)) => {
            msg.contains("idx_pull_requests_repo_number") || msg.contains("pull_requests.number")
        }
        _ => false,
    }
}

/// Whether `e` is a collision on the one-open-pull-request-per-pair index.
pub fn is_open_pair_collision(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) && !is_number_collision(e)
}

/// A pull request of `repo_id` by id.
pub async fn find(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    id: Uuid,
) -> Result<Option<pull_request::Model>, DbErr> {
    pull_request::Entity::find_by_id(id)
        .filter(pull_request::Column::RepoId.eq(repo_id))
        .one(db)
        .await
}

/// A pull request of `repo_id` by number.
pub async fn find_by_number(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    number: i64,
) -> Result<Option<pull_request::Model>, DbErr> {
    pull_request::Entity::find()
        .filter(pull_request::Column::RepoId.eq(repo_id))
        .filter(pull_request::Column::Number.eq(number))
        .one(db)
        .await
}

/// The open pull request for (`source`, `target`), if any.
pub async fn find_open_pair(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    source: &str,
    target: &str,
) -> Result<Option<pull_request::Model>, DbErr> {
    pull_request::Entity::find()
        .filter(pull_request::Column::RepoId.eq(repo_id))
        .filter(pull_request::Column::Status.eq(OPEN))
        .filter(pull_request::Column::SourceBranch.eq(source))
        .filter(pull_request::Column::TargetBranch.eq(target))
        .one(db)
        .await
}

/// Lists the pull requests of `repo_id`, newest first; `status` `None` lists all.
pub async fn list(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    status: Option<&str>,
    limit: u64,
    offset: u64,
) -> Result<Vec<pull_request::Model>, DbErr> {
    let mut q = pull_request::Entity::find().filter(pull_request::Column::RepoId.eq(repo_id));
    if let Some(s) = status {
        q = q.filter(pull_request::Column::Status.eq(s));
    }
    q.order_by_desc(pull_request::Column::Number)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// The open pull requests of `repo_id` whose source or target is one of `branches`.
pub async fn open_touching(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    branches: &[String],
) -> Result<Vec<pull_request::Model>, DbErr> {
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    pull_request::Entity::find()
        .filter(pull_request::Column::RepoId.eq(repo_id))
        .filter(pull_request::Column::Status.eq(OPEN))
        .filter(
            sea_orm::Condition::any()
                .add(pull_request::Column::SourceBranch.is_in(branches.iter().cloned()))
                .add(pull_request::Column::TargetBranch.is_in(branches.iter().cloned())),
        )
        .order_by_asc(pull_request::Column::Number)
        .all(db)
        .await
}

/// Marks an open pull request merged, only if it is still open (compare-and-swap on the status):
/// answers whether this call did it.
pub async fn mark_merged(
    db: &impl ConnectionTrait,
    pr: &pull_request::Model,
    merge: Merged<'_>,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let result = pull_request::Entity::update_many()
        .col_expr(pull_request::Column::Status, Expr::value(MERGED))
        .col_expr(pull_request::Column::HeadSha, Expr::value(merge.head_sha))
        .col_expr(pull_request::Column::BaseSha, Expr::value(merge.base_sha))
        .col_expr(
            pull_request::Column::MergeCommitSha,
            Expr::value(merge.merge_commit_sha),
        )
        .col_expr(
            pull_request::Column::MergeStrategy,
            Expr::value(merge.strategy),
        )
        .col_expr(pull_request::Column::MergedBy, Expr::value(merge.merged_by))
        .col_expr(pull_request::Column::MergedAt, Expr::value(now))
        .col_expr(pull_request::Column::UpdatedAt, Expr::value(now))
        .filter(pull_request::Column::Id.eq(pr.id))
        .filter(pull_request::Column::Status.eq(OPEN))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// How a pull request was merged.
#[derive(Debug, Clone, Copy)]
pub struct Merged<'a> {
    /// The source tip merged.
    pub head_sha: &'a str,
    /// The target tip merged into.
    pub base_sha: &'a str,
    /// The new target tip.
    pub merge_commit_sha: &'a str,
    /// The strategy (`manual` for a merge by push).
    pub strategy: &'a str,
    /// Who merged.
    pub merged_by: Option<Uuid>,
}

/// Records a new source tip of an open pull request.
pub async fn set_head(db: &impl ConnectionTrait, id: Uuid, head_sha: &str) -> Result<(), DbErr> {
    pull_request::Entity::update_many()
        .col_expr(pull_request::Column::HeadSha, Expr::value(head_sha))
        .col_expr(pull_request::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(pull_request::Column::Id.eq(id))
        .filter(pull_request::Column::Status.eq(OPEN))
        .exec(db)
        .await
        .map(|_| ())
}
