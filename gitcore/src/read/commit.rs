//! One commit's metadata: `git cat-file commit`, decoded.

use gix::ObjectId;

use super::{load, lossy, Error, Signature};

/// A commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Its id.
    pub id: ObjectId,
    /// Its root tree.
    pub tree: ObjectId,
    /// Its parents, in order.
    pub parents: Vec<ObjectId>,
    /// Who wrote the change.
    pub author: Signature,
    /// Who committed it.
    pub committer: Signature,
    /// The whole message as stored (subject, blank line, body; usually ending in a newline).
    pub message: String,
}

/// Reads the commit `id`.
///
/// Commits are immutable, so what was parsed is kept per process ([`recent`]) and served again
/// while the repository still has the object (a cheap index lookup: the cache is shared by all
/// repositories, and a commit of one must never be served from another).
pub fn read(repo: &gix::Repository, id: ObjectId) -> Result<Commit, Error> {
    if let Some(c) = recent::get(&id) {
        if repo.has_object(id) {
            return Ok(c);
        }
    }
    let c = read_object(repo, id)?;
    recent::put(&c);
    Ok(c)
}

/// Commits parsed lately, at most two generations of [`recent::GENERATION`].
mod recent {
    use std::sync::{Mutex, OnceLock};

    use gix::ObjectId;

    use super::Commit;
    use crate::read::generations::Generations;

    pub(super) const GENERATION: usize = 8192;

    static CACHE: OnceLock<Mutex<Generations<Commit>>> = OnceLock::new();

    fn cache() -> &'static Mutex<Generations<Commit>> {
        CACHE.get_or_init(|| Mutex::new(Generations::new(GENERATION)))
    }

    pub(super) fn get(id: &ObjectId) -> Option<Commit> {
        cache().lock().ok()?.find(id, |c| Some(c.clone()))
    }

    pub(super) fn put(c: &Commit) {
        if let Ok(mut g) = cache().lock() {
            g.insert(c.id, c.clone());
        }
    }
}

fn read_object(repo: &gix::Repository, id: ObjectId) -> Result<Commit, Error> {
    let (kind, data) = load(repo, id)?;
    if kind != gix::object::Kind::Commit {
        return Err(Error::object(
            id,
            format!("expected a commit, found a {kind}"),
        ));
    }
    let c = gix::objs::CommitRef::from_bytes(&data, repo.object_hash())
        .map_err(|e| Error::object(id, e))?;
    let author = c.author().map_err(|e| Error::object(id, e))?;
    let committer = c.committer().map_err(|e| Error::object(id, e))?;
    Ok(Commit {
        id,
        tree: c.tree(),
        parents: c.parents().collect(),
        author: Signature::from_ref(author),
        committer: Signature::from_ref(committer),
        message: lossy(c.message),
    })
}

/// Resolves `name` (branch, tag, sha) and reads that commit.
pub fn find(repo: &gix::Repository, name: &str) -> Result<Commit, Error> {
    let id = super::resolve::commit(repo, name)?;
    read(repo, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, git_at, init, open};

    #[test]
    fn a_commit_kept_from_one_repository_is_not_served_from_another() {
        let (a, b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        init(a.path());
        init(b.path());
        git(
            a.path(),
            &["commit", "-q", "--allow-empty", "-m", "only in a"],
        );
        let id = ObjectId::from_hex(git(a.path(), &["rev-parse", "HEAD"]).trim().as_bytes())
            .expect("hex");
        let first = read(&open(a.path()), id).expect("in a");
        assert_eq!(read(&open(a.path()), id).expect("again"), first);
        assert!(read(&open(b.path()), id).is_err(), "b has no such commit");
    }

    #[test]
    fn reads_what_git_wrote() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::write(dir.join("a"), "a\n").expect("write");
        git(dir, &["add", "."]);
        git_at(
            dir,
            &["commit", "-q", "-m", "subject", "-m", "body line"],
            "1700000100 +0230",
        );
        let repo = open(dir);
        let c = find(&repo, "main").expect("commit");
        assert_eq!(c.message, "subject\n\nbody line\n");
        assert_eq!(c.author.name, "A U Thor");
        assert_eq!(c.author.email, "author@example.com");
        assert_eq!(c.author.seconds, 1_700_000_100);
        assert_eq!(c.author.offset, 2 * 3600 + 30 * 60);
        assert_eq!(c.committer.name, "C O Mitter");
        assert!(c.parents.is_empty());
        assert_eq!(
            c.tree.to_string(),
            git(dir, &["rev-parse", "main^{tree}"]).trim()
        );
    }
}
