//! The durable job queue's queries: enqueue (inside the caller's transaction), claim with a lease,
//! renew, finish, retry, and the admin listing.
//!
//! Claiming is one statement: an `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING *`. On
//! PostgreSQL the inner select takes `FOR UPDATE SKIP LOCKED`, so workers of several processes never
//! claim one job twice and never wait on each other; SQLite runs one writer at a time, which makes the
//! same statement atomic there. A `running` job whose lease expired counts as claimable: its worker
//! died (or lost its database) and another takes it over.

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, Value,
};
use uuid::Uuid;

/// The kinds of job, with their policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A post in the network service's feed after a push.
    FeedPost,
    /// A push of the updated refs to the org's GitHub mirror.
    PushMirror,
    /// One webhook delivery.
    WebhookDelivery,
    /// Repository upkeep: pack consolidation and removal of what killed processes left.
    RepoUpkeep,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FeedPost => "feed_post",
            Kind::PushMirror => "push_mirror",
            Kind::WebhookDelivery => "webhook_delivery",
            Kind::RepoUpkeep => "repo_upkeep",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "feed_post" => Some(Kind::FeedPost),
            "push_mirror" => Some(Kind::PushMirror),
            "webhook_delivery" => Some(Kind::WebhookDelivery),
            "repo_upkeep" => Some(Kind::RepoUpkeep),
            _ => None,
        }
    }

    /// How many times a job of this kind runs before it stays `failed`.
    pub fn max_attempts(self) -> i32 {
        match self {
            Kind::FeedPost => 8,
            Kind::PushMirror => 6,
            Kind::WebhookDelivery => 5,
            Kind::RepoUpkeep => 5,
        }
    }
}

/// The states of a job.
pub const STATES: [&str; 4] = ["queued", "running", "succeeded", "failed"];

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What it does.
    pub kind: Kind,
    /// The repository it concerns.
    pub repo_id: Option<Uuid>,
    /// At most one job per (kind, key): a push id, a delivery id.
    pub dedup_key: Option<String>,
    /// The handler's input.
    pub payload: serde_json::Value,
}

/// Enqueues `job` on `db` (a transaction, so it commits with the change that caused it). Answers
/// the new id, or `None` when a job with the same dedup key exists. A push mirror supersedes the
/// repository's queued mirror jobs: the new one pushes the refs as they are when it runs.
pub async fn enqueue(db: &impl ConnectionTrait, job: NewJob) -> Result<Option<Uuid>, DbErr> {
    let now = Utc::now();
    let id = Uuid::new_v4();
    let (kind, repo_id) = (job.kind, job.repo_id);
    let row = job::ActiveModel {
        id: Set(id),
        kind: Set(job.kind.as_str().to_owned()),
        repo_id: Set(job.repo_id),
        dedup_key: Set(job.dedup_key),
        payload: Set(job.payload),
        state: Set("queued".to_owned()),
        attempts: Set(0),
        max_attempts: Set(job.kind.max_attempts()),
        last_error: Set(None),
        result: Set(None),
        run_after: Set(now),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    };
    let inserted = job::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([job::Column::Kind, job::Column::DedupKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if inserted > 0 && kind == Kind::PushMirror {
        if let Some(repo) = repo_id {
            job::Entity::update_many()
                .col_expr(job::Column::State, "succeeded".into())
                .col_expr(
                    job::Column::Result,
                    Value::Json(Some(Box::new(serde_json::json!({"supersededBy": id})))).into(),
                )
                .col_expr(job::Column::FinishedAt, Value::from(now).into())
                .col_expr(job::Column::UpdatedAt, Value::from(now).into())
                .filter(job::Column::Kind.eq(Kind::PushMirror.as_str()))
                .filter(job::Column::RepoId.eq(repo))
                .filter(job::Column::State.eq("queued"))
                .filter(job::Column::Id.ne(id))
                .exec(db)
                .await?;
        }
    }
    Ok((inserted > 0).then_some(id))
}

fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    // The SQL is written with PostgreSQL's `$n`; SQLite reads the same numbers as `?n`.
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Claims the next runnable job for `owner`, leased until `now + lease`: the oldest due queued
/// job, or a running one whose lease expired. A push mirror is not claimed while another mirror
/// of its repository runs (they run one at a time, in order).
pub async fn claim(
    db: &impl ConnectionTrait,
    owner: &str,
    lease: std::time::Duration,
) -> Result<Option<job::Model>, DbErr> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
         lease_expires_at = $2, updated_at = $3 \
         WHERE id = (SELECT j.id FROM jobs j \
           WHERE ((j.state = 'queued' AND j.run_after <= $3) \
              OR (j.state = 'running' AND j.lease_expires_at < $3)) \
             AND (j.kind <> 'push_mirror' OR NOT EXISTS (SELECT 1 FROM jobs r \
               WHERE r.kind = 'push_mirror' AND r.repo_id = j.repo_id AND r.id <> j.id \
                 AND r.state = 'running' AND r.lease_expires_at >= $3)) \
           ORDER BY j.run_after, j.created_at LIMIT 1 {lock}) \
         RETURNING *"
    );
    let stmt = statement(
        backend,
        &sql,
        vec![owner.into(), Value::from(expires), Value::from(now)],
    );
    match db.query_one(stmt).await? {
        None => Ok(None),
        Some(row) => job::Model::from_query_result(&row, "").map(Some),
    }
}

/// Extends the lease of a job `owner` still holds; `false` when it no longer does.
pub async fn renew(
    db: &impl ConnectionTrait,
    id: Uuid,
    owner: &str,
    lease: std::time::Duration,
) -> Result<bool, DbErr> {
    let expires =
        Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let r = job::Entity::update_many()
        .col_expr(job::Column::LeaseExpiresAt, Value::from(expires).into())
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::LeaseOwner.eq(owner))
        .filter(job::Column::State.eq("running"))
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Done; the handler's result, if any.
    Succeeded(Option<serde_json::Value>),
    /// Try again at the given time.
    Retry {
        /// Why it failed.
        error: String,
        /// Not before.
        at: DateTime<Utc>,
    },
    /// Stays failed.
    Failed(String),
}

/// Records how the run of a job `owner` holds ended; `false` when the lease was lost (another
/// worker took the job over, and its outcome counts).
pub async fn finish(
    db: &impl ConnectionTrait,
    id: Uuid,
    owner: &str,
    finish: Finish,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let mut q = job::Entity::update_many()
        .col_expr(job::Column::UpdatedAt, Value::from(now).into())
        .col_expr(job::Column::LeaseOwner, Value::String(None).into())
        .col_expr(
            job::Column::LeaseExpiresAt,
            Value::ChronoDateTimeUtc(None).into(),
        );
    q = match finish {
        Finish::Succeeded(result) => q
            .col_expr(job::Column::State, "succeeded".into())
            .col_expr(
                job::Column::Result,
                Value::Json(result.map(Box::new)).into(),
            )
            .col_expr(job::Column::FinishedAt, Value::from(now).into()),
        Finish::Retry { error, at } => q
            .col_expr(job::Column::State, "queued".into())
            .col_expr(job::Column::LastError, error.into())
            .col_expr(job::Column::RunAfter, Value::from(at).into()),
        Finish::Failed(error) => q
            .col_expr(job::Column::State, "failed".into())
            .col_expr(job::Column::LastError, error.into())
            .col_expr(job::Column::FinishedAt, Value::from(now).into()),
    };
    let r = q
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::LeaseOwner.eq(owner))
        .filter(job::Column::State.eq("running"))
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}

/// What [`retry`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Queued again with its attempts reset.
    Queued(Box<job::Model>),
    /// No such job.
    NotFound,
    /// The job is not failed (running, queued or succeeded); its state.
    NotFailed(String),
}

/// Puts a failed job back in the queue with its attempts reset (compare-and-swap on `failed`).
/// Answers the job as queued (a worker may claim it the moment after).
pub async fn retry(db: &impl ConnectionTrait, id: Uuid) -> Result<RetryOutcome, DbErr> {
    let Some(before) = job::Entity::find_by_id(id).one(db).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    let now = Utc::now();
    let r = job::Entity::update_many()
        .col_expr(job::Column::State, "queued".into())
        .col_expr(job::Column::Attempts, 0.into())
        .col_expr(job::Column::RunAfter, Value::from(now).into())
        .col_expr(job::Column::UpdatedAt, Value::from(now).into())
        .col_expr(
            job::Column::FinishedAt,
            Value::ChronoDateTimeUtc(None).into(),
        )
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.eq("failed"))
        .exec(db)
        .await?;
    if r.rows_affected == 0 {
        let state = job::Entity::find_by_id(id)
            .one(db)
            .await?
            .map_or(before.state, |j| j.state);
        return Ok(RetryOutcome::NotFailed(state));
    }
    Ok(RetryOutcome::Queued(Box::new(job::Model {
        state: "queued".to_owned(),
        attempts: 0,
        run_after: now,
        updated_at: now,
        finished_at: None,
        ..before
    })))
}

/// Filters of [`list`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs of this repository.
    pub repo_id: Option<Uuid>,
}

/// Lists jobs, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &Filter,
    limit: u64,
    offset: u64,
) -> Result<Vec<job::Model>, DbErr> {
    let mut q = job::Entity::find();
    if let Some(s) = &filter.state {
        q = q.filter(job::Column::State.eq(s.clone()));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(job::Column::Kind.eq(k.clone()));
    }
    if let Some(r) = filter.repo_id {
        q = q.filter(job::Column::RepoId.eq(r));
    }
    q.order_by_desc(job::Column::CreatedAt)
        .order_by_desc(job::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Whether a job of `kind` for `repo_id` is queued or running.
pub async fn pending(db: &impl ConnectionTrait, kind: Kind, repo_id: Uuid) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    let n = job::Entity::find()
        .filter(job::Column::Kind.eq(kind.as_str()))
        .filter(job::Column::RepoId.eq(repo_id))
        .filter(job::Column::State.is_in(["queued", "running"]))
        .count(db)
        .await?;
    Ok(n > 0)
}

/// One job.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<job::Model>, DbErr> {
    job::Entity::find_by_id(id).one(db).await
}

/// Counts queued (due or not) and failed jobs, for health and metrics.
pub async fn depth(db: &impl ConnectionTrait) -> Result<(u64, u64), DbErr> {
    use sea_orm::PaginatorTrait;
    let queued = job::Entity::find()
        .filter(job::Column::State.eq("queued"))
        .count(db)
        .await?;
    let failed = job::Entity::find()
        .filter(job::Column::State.eq("failed"))
        .count(db)
        .await?;
    Ok((queued, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn db() -> (sea_orm::DatabaseConnection, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = crate::config::sqlite_url(&dir.path().join("jobs.db"));
        let db = crate::db::connect(&url).await.expect("connect");
        crate::db::migrate(&db).await.expect("migrate");
        (db, dir)
    }

    fn mirror(repo: Uuid, push: u32) -> NewJob {
        NewJob {
            kind: Kind::PushMirror,
            repo_id: Some(repo),
            dedup_key: Some(format!("{repo}-{push}")),
            payload: serde_json::json!({"push": push}),
        }
    }

    #[tokio::test]
    async fn mirrors_supersede_queued_ones_and_run_one_at_a_time() {
        let (db, _dir) = db().await;
        let (repo, other) = (Uuid::new_v4(), Uuid::new_v4());
        let lease = Duration::from_secs(60);
        let first = enqueue(&db, mirror(repo, 1))
            .await
            .expect("q")
            .expect("new");
        // The same push again: deduplicated.
        assert_eq!(enqueue(&db, mirror(repo, 1)).await.expect("q"), None);
        let second = enqueue(&db, mirror(repo, 2))
            .await
            .expect("q")
            .expect("new");
        let superseded = get(&db, first).await.expect("get").expect("row");
        assert_eq!(superseded.state, "succeeded");
        assert_eq!(
            superseded.result,
            Some(serde_json::json!({"supersededBy": second}))
        );
        // The second runs; a third queued meanwhile waits for it, other repositories do not.
        let running = claim(&db, "w1", lease).await.expect("claim").expect("job");
        assert_eq!(running.id, second);
        let third = enqueue(&db, mirror(repo, 3))
            .await
            .expect("q")
            .expect("new");
        let elsewhere = enqueue(&db, mirror(other, 1))
            .await
            .expect("q")
            .expect("new");
        let next = claim(&db, "w2", lease).await.expect("claim").expect("job");
        assert_eq!(next.id, elsewhere, "the other repository's mirror runs");
        assert!(claim(&db, "w2", lease).await.expect("claim").is_none());
        assert!(finish(&db, second, "w1", Finish::Succeeded(None))
            .await
            .expect("finish"));
        let next = claim(&db, "w2", lease).await.expect("claim").expect("job");
        assert_eq!(next.id, third);
        // Only the lease holder records the outcome.
        assert!(!finish(&db, third, "w1", Finish::Failed("x".into()))
            .await
            .expect("finish"));
        assert!(
            finish(&db, third, "w2", Finish::Failed("remote refused".into()))
                .await
                .expect("finish")
        );
        assert!(matches!(
            retry(&db, third).await.expect("retry"),
            RetryOutcome::Queued(_)
        ));
        assert!(
            matches!(retry(&db, third).await.expect("retry"), RetryOutcome::NotFailed(s) if s == "queued")
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_claimed_again() {
        let (db, _dir) = db().await;
        let id = enqueue(
            &db,
            NewJob {
                kind: Kind::FeedPost,
                repo_id: None,
                dedup_key: Some("p".into()),
                payload: serde_json::json!({}),
            },
        )
        .await
        .expect("q")
        .expect("new");
        let short = Duration::from_millis(50);
        let a = claim(&db, "dead-worker", short)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!((a.id, a.attempts), (id, 1));
        assert!(claim(&db, "w", short).await.expect("claim").is_none());
        tokio::time::sleep(Duration::from_millis(80)).await;
        let b = claim(&db, "w", short).await.expect("claim").expect("job");
        assert_eq!((b.id, b.attempts), (id, 2));
        assert!(!renew(&db, id, "dead-worker", short).await.expect("renew"));
        assert!(renew(&db, id, "w", short).await.expect("renew"));
    }
}
