//! Tags, lightweight and annotated, sorted by name like `git for-each-ref refs/tags`.

use gix::bstr::ByteSlice;
use gix::ObjectId;

use super::{load, lossy, peel_tags, Error, Signature};

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The name without `refs/tags/`.
    pub name: String,
    /// What the ref points at: the tag object for annotated tags, else the tagged object.
    pub target: ObjectId,
    /// The commit it finally points at, if it points at a commit.
    pub commit: Option<ObjectId>,
    /// The annotated tag's message (signature excluded).
    pub message: Option<String>,
    /// The annotated tag's tagger, if recorded.
    pub tagger: Option<Signature>,
}

/// Lists the tags of `repo`, sorted by name (byte order).
pub fn list(repo: &gix::Repository) -> Result<Vec<Tag>, Error> {
    let platform = repo.references().map_err(|e| Error::References(e.into()))?;
    let mut names = Vec::new();
    for r in platform
        .prefixed(b"refs/tags/".as_bstr())
        .map_err(|e| Error::References(e.into()))?
    {
        let r = r.map_err(|e| Error::References(e.into()))?;
        names.push(r.name().as_bstr().to_owned());
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for full in names {
        let full = lossy(full.as_bstr());
        let Some(target) = super::resolve::find_ref(repo, &full)? else {
            continue;
        };
        let name = full.strip_prefix("refs/tags/").unwrap_or(&full).to_owned();
        out.push(describe(repo, name, target)?);
    }
    Ok(out)
}

/// Describes the tag `name` pointing at `target`.
fn describe(repo: &gix::Repository, name: String, target: ObjectId) -> Result<Tag, Error> {
    let (kind, data) = load(repo, target)?;
    let (message, tagger) = if kind == gix::object::Kind::Tag {
        let tag = gix::objs::TagRef::from_bytes(&data, repo.object_hash())
            .map_err(|e| Error::object(target, e))?;
        let tagger = tag
            .tagger()
            .map_err(|e| Error::object(target, e))?
            .map(Signature::from_ref);
        (Some(lossy(tag.message)), tagger)
    } else {
        (None, None)
    };
    let (peeled, peeled_kind, _) = peel_tags(repo, target)?;
    Ok(Tag {
        name,
        target,
        commit: (peeled_kind == gix::object::Kind::Commit).then_some(peeled),
        message,
        tagger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn lists_like_for_each_ref() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::write(dir.join("a"), "a\n").expect("write");
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "one"]);
        git(dir, &["tag", "light"]);
        git(dir, &["tag", "-a", "-m", "release\n\nnotes", "v1.0"]);
        git(dir, &["tag", "-a", "-m", "nested", "v1.0-again", "v1.0"]);
        let blob = git(dir, &["rev-parse", "main:a"]).trim().to_owned();
        git(dir, &["tag", "blob-tag", &blob]);
        git(dir, &["pack-refs", "--all"]);
        git(dir, &["tag", "z-loose"]);
        let repo = open(dir);
        let ours: Vec<String> = list(&repo)
            .expect("tags")
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}",
                    t.name,
                    t.target,
                    t.commit.map(|c| c.to_string()).unwrap_or_default()
                )
            })
            .collect();
        let theirs = git(
            dir,
            &[
                "for-each-ref",
                "refs/tags",
                "--format=%(refname:strip=2) %(objectname) %(*objectname)",
            ],
        );
        let head = git(dir, &["rev-parse", "main"]).trim().to_owned();
        let theirs: Vec<String> = theirs
            .lines()
            .map(|l| {
                let mut parts: Vec<&str> = l.split(' ').collect();
                // for-each-ref peels one level only; lightweight tags have no `*objectname`.
                match parts[0] {
                    "light" | "z-loose" => parts[2] = &head,
                    "v1.0-again" => parts[2] = &head,
                    "blob-tag" => parts[2] = "",
                    _ => {}
                }
                parts.join(" ")
            })
            .collect();
        assert_eq!(ours, theirs);
        let tags = list(&repo).expect("tags");
        let v1 = tags.iter().find(|t| t.name == "v1.0").expect("v1.0");
        assert_eq!(v1.message.as_deref(), Some("release\n\nnotes\n"));
        assert_eq!(
            v1.tagger.as_ref().map(|t| t.name.as_str()),
            Some("C O Mitter")
        );
        let light = tags.iter().find(|t| t.name == "light").expect("light");
        assert_eq!(light.message, None);
    }
}
