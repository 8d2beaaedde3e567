//! Branch protection on pushes: per-branch rules the server passes to receive-pack (deletion,
//! force-push, pull requests only), each refusal worded for the git user, who sees it next to the
//! ref (`! [remote rejected] main (…)`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use gix::ObjectId;

/// The rule of one branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRule {
    /// The full ref name, `refs/heads/<branch>`.
    pub name: String,
    /// Non-fast-forward updates are allowed.
    pub allow_force_push: bool,
    /// Deleting the branch is allowed.
    pub allow_deletion: bool,
    /// Only pull-request merges may move the branch; direct pushes are refused.
    pub require_pull_request: bool,
}

/// Reads a commit's parents and committer time, from the quarantine and the repository.
pub type FindCommit<'a> = dyn Fn(&ObjectId) -> Option<(Vec<ObjectId>, i64)> + 'a;

/// Whether `old` is an ancestor of `new` (or equal).
///
/// Commit dates say nothing certain about ancestry (a client with a slow clock commits on top of
/// a server-made merge "before" it), so no date cuts the walk short. It is git's paint-down
/// instead: commits reachable from `old` are painted `OLD`, those reachable from `new` `NEW`,
/// newest first. `old` painted `NEW` answers yes; once every commit still queued is painted
/// `OLD` (an ancestor of `old`, which cannot lead back to it), no.
pub fn is_ancestor(find: &FindCommit<'_>, old: ObjectId, new: ObjectId) -> bool {
    const OLD: u8 = 1;
    const NEW: u8 = 2;
    if old == new {
        return true;
    }
    let mut flags: HashMap<ObjectId, u8> = HashMap::new();
    let mut queue: BinaryHeap<(i64, Reverse<ObjectId>)> = BinaryHeap::new();
    let paint = |id: ObjectId,
                 add: u8,
                 flags: &mut HashMap<ObjectId, u8>,
                 queue: &mut BinaryHeap<(i64, Reverse<ObjectId>)>| {
        let f = flags.entry(id).or_insert(0);
        if *f & add != add {
            *f |= add;
            if let Some((_, t)) = find(&id) {
                queue.push((t, Reverse(id)));
            }
        }
    };
    paint(old, OLD, &mut flags, &mut queue);
    paint(new, NEW, &mut flags, &mut queue);
    while let Some((_, Reverse(id))) = queue.pop() {
        let f = flags.get(&id).copied().unwrap_or(0);
        if id == old && f & NEW != 0 {
            return true;
        }
        let Some((parents, _)) = find(&id) else {
            continue;
        };
        for p in parents {
            if p == old && f & NEW != 0 {
                return true;
            }
            paint(p, f, &mut flags, &mut queue);
        }
        let only_old_left = queue
            .iter()
            .all(|(_, Reverse(q))| flags.get(q).is_some_and(|f| f & OLD != 0));
        if only_old_left {
            return false;
        }
    }
    false
}

/// Checks one ref update against `rules`; the refusal reason when it breaks one.
pub fn check(
    rules: &[BranchRule],
    find: &FindCommit<'_>,
    name: &str,
    old: ObjectId,
    new: ObjectId,
) -> Result<(), String> {
    let Some(rule) = rules.iter().find(|r| r.name == name) else {
        return Ok(());
    };
    if new.is_null() {
        if !rule.allow_deletion {
            return Err(format!("refusing to delete the protected branch {name}"));
        }
        return Ok(());
    }
    if rule.require_pull_request {
        return Err(format!(
            "protected branch {name}: changes must be made through a pull request"
        ));
    }
    if !old.is_null() && !rule.allow_force_push && !is_ancestor(find, old, new) {
        return Err(format!(
            "protected branch {name}: force-push is not allowed (the update is not a fast-forward)"
        ));
    }
    Ok(())
}

/// A [`FindCommit`] over an object database (the push's quarantine with the repository as its
/// alternate, or the repository).
pub fn commits_in(
    odb: &gix::odb::Handle,
) -> impl Fn(&ObjectId) -> Option<(Vec<ObjectId>, i64)> + '_ {
    move |id| {
        let mut buf = Vec::new();
        let data = gix::prelude::Find::try_find(odb, id, &mut buf).ok()??;
        if data.kind != gix::objs::Kind::Commit {
            return None;
        }
        let commit = gix::objs::CommitRef::from_bytes(data.data, gix::hash::Kind::Sha1).ok()?;
        let time = commit
            .committer()
            .ok()
            .map_or(0, |c| c.time().map_or(0, |t| t.seconds));
        Some((commit.parents().collect(), time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init};

    #[test]
    fn fast_forwards_pass_rewrites_and_deletes_do_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut ids = Vec::new();
        for i in 0..4 {
            std::fs::write(dir.join("f"), format!("{i}\n")).expect("write");
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
            ids.push(git(dir, &["rev-parse", "HEAD"]).trim().to_owned());
        }
        git(dir, &["checkout", "-q", "-b", "side", &ids[1]]);
        std::fs::write(dir.join("g"), "side\n").expect("write");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "side"]);
        let side = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        let id = |s: &str| ObjectId::from_hex(s.as_bytes()).expect("id");
        let repo = crate::storage::open(&dir.join(".git")).expect("open");
        let odb = repo.objects.clone().into_inner();
        let find = commits_in(&odb);
        assert!(is_ancestor(&find, id(&ids[0]), id(&ids[3])));
        assert!(is_ancestor(&find, id(&ids[3]), id(&ids[3])));
        assert!(!is_ancestor(&find, id(&ids[3]), id(&ids[0])));
        assert!(!is_ancestor(&find, id(&ids[2]), id(&side)));
        let rules = vec![BranchRule {
            name: "refs/heads/main".into(),
            allow_force_push: false,
            allow_deletion: false,
            require_pull_request: false,
        }];
        let zero = ObjectId::null(gix::hash::Kind::Sha1);
        assert!(check(&rules, &find, "refs/heads/main", id(&ids[1]), id(&ids[3])).is_ok());
        let e = check(&rules, &find, "refs/heads/main", id(&ids[3]), id(&side)).expect_err("ff");
        assert!(e.contains("force-push is not allowed"), "{e}");
        let e = check(&rules, &find, "refs/heads/main", id(&ids[3]), zero).expect_err("delete");
        assert!(e.contains("refusing to delete the protected branch"), "{e}");
        assert!(check(&rules, &find, "refs/heads/other", id(&ids[3]), id(&side)).is_ok());
        assert!(
            check(&rules, &find, "refs/heads/main", zero, id(&side)).is_ok(),
            "a create"
        );
        // A child dated years before its parent (a client with a wrong clock committing on top
        // of a server-made merge) is still a fast-forward.
        git(dir, &["checkout", "-q", "main"]);
        crate::read::testutil::git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "late"],
            "1900000000 +0000",
        );
        let late = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        crate::read::testutil::git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "early"],
            "1000000000 +0000",
        );
        let early = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        let repo = crate::storage::open(&dir.join(".git")).expect("open");
        let odb = repo.objects.clone().into_inner();
        let find = commits_in(&odb);
        assert!(is_ancestor(&find, id(&late), id(&early)));
        assert!(is_ancestor(&find, id(&ids[0]), id(&early)));
        assert!(!is_ancestor(&find, id(&early), id(&late)));
        assert!(!is_ancestor(&find, id(&side), id(&early)));
        assert!(check(&rules, &find, "refs/heads/main", id(&late), id(&early)).is_ok());
        let pr_only = vec![BranchRule {
            require_pull_request: true,
            ..rules[0].clone()
        }];
        let e =
            check(&pr_only, &find, "refs/heads/main", id(&ids[1]), id(&ids[3])).expect_err("pr");
        assert!(e.contains("pull request"), "{e}");
    }
}
