//! `git blame` of a file at a commit, on gix-blame: for each run of lines, the commit that last
//! changed them, where they were in that commit's version of the file (line and path; renames
//! are followed like `git blame` does), and that commit's author.

use std::collections::HashMap;

use gix::bstr::ByteSlice;
use gix::ObjectId;

use super::commit::Commit;
use super::resolve::{treeish_and_path, Treeish};
use super::Error;

/// Lines of the blamed file that one commit last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// First line in the blamed file (1-based).
    pub start_line: u32,
    /// First line in the commit's version of the file (1-based).
    pub original_start_line: u32,
    /// How many lines.
    pub lines: u32,
    /// The commit.
    pub commit: ObjectId,
    /// The file's path in that commit (differs after a rename).
    pub original_path: String,
}

/// A whole blame.
#[derive(Debug, Clone)]
pub struct Blame {
    /// The commit blamed at.
    pub commit: ObjectId,
    /// The file's path there.
    pub path: String,
    /// Runs of lines, in file order, covering every line.
    pub ranges: Vec<Range>,
    /// The commits the ranges name, by id.
    pub commits: HashMap<ObjectId, Commit>,
}

/// Blames `rest` under the ref `first/rest` starts with (see [`treeish_and_path`]).
pub fn blame(repo: &gix::Repository, first: &str, rest: &str) -> Result<Blame, Error> {
    let (at, path) = treeish_and_path(repo, first, rest)?;
    blame_at(repo, at, path)
}

/// Blames the file `path` (validated) at `at`, which must be a commit.
pub fn blame_at(repo: &gix::Repository, at: Treeish, path: &str) -> Result<Blame, Error> {
    // The file must exist there (and be a file): the same errors as a blob read.
    super::blob::read_at(repo, at, path)?;
    let Some(commit) = at.commit else {
        return Err(Error::WrongKind {
            name: path.to_owned(),
            kind: gix::object::Kind::Tree,
            wanted: "commit",
        });
    };
    let options = gix::repository::blame_file::Options {
        rewrites: Some(gix::diff::Rewrites::default()),
        ..Default::default()
    };
    let outcome = repo
        .blame_file(path.as_bytes().as_bstr(), commit, options)
        .map_err(|e| Error::object(commit, e))?;
    let mut commits = HashMap::new();
    let mut ranges = Vec::with_capacity(outcome.entries.len());
    for e in &outcome.entries {
        if let std::collections::hash_map::Entry::Vacant(slot) = commits.entry(e.commit_id) {
            slot.insert(super::commit::read(repo, e.commit_id)?);
        }
        ranges.push(Range {
            start_line: e.start_in_blamed_file + 1,
            original_start_line: e.start_in_source_file + 1,
            lines: e.len.get(),
            commit: e.commit_id,
            original_path: e
                .source_file_name
                .as_ref()
                .map_or_else(|| path.to_owned(), |p| p.to_str_lossy().into_owned()),
        });
    }
    Ok(Blame {
        commit,
        path: path.to_owned(),
        ranges,
        commits,
    })
}
