//! A commit's changes against its first parent (root commits against the empty tree), with the
//! text `git diff -M <parent> <commit>` prints, file by file.
//!
//! What is git's and reproduced here:
//! - the tree walk and file order (git's tree order; a rename sits at its destination);
//! - rename detection as in `diffcore-rename.c` with the default `-M` (50%): exact renames first
//!   (preferring the same file name), then same-basename pairs at 75%, then the similarity matrix
//!   with four candidates per destination, scored by `diffcore-delta.c`'s span hashing; empty files
//!   rename too; symlinks and submodules only rename exactly; more than 1000×1000 candidates skip
//!   inexact detection (`diff.renameLimit`);
//! - headers: `diff --git`, `new file mode`, `deleted file mode`, `old mode`/`new mode`,
//!   `similarity index`, `rename from`/`rename to`, `index <abbrev>..<abbrev>[ <mode>]` with
//!   git's default abbreviation, `--- a/…`/`+++ b/…` (a tab after names with spaces), C-style
//!   quoting of unusual paths (`core.quotePath`);
//! - `Binary files a/x and b/x differ` when either side has a NUL in its first 8000 bytes or is
//!   larger than 512 MiB (`core.bigFileThreshold`);
//! - hunks: Myers with git's indent heuristic, 3 lines of context, hunks joined when at most 6
//!   lines apart, `@@ -a,b +c,d @@ <function line>` with git's default function-line rule,
//!   `\ No newline at end of file`;
//! - a type change (file ↔ symlink ↔ submodule) prints as a deletion then an addition;
//! - submodules diff as `Subproject commit <sha>` lines.
//!
//! Not reproduced: `.gitattributes` (diff drivers, `binary`, `-diff`), copy detection (off by
//! default in git too), and exotic diff configuration.

use std::collections::HashMap;
use std::rc::Rc;

use gix::diff::blob::{Algorithm, Diff, InternedInput};
use gix::ObjectId;

use super::resolve::Abbreviator;
use super::{canonical_mode, commit_node, load, tree_entries, Error};

/// Lines of context around changes.
const CONTEXT: u32 = 3;
/// git's `MAX_SCORE`.
const MAX_SCORE: u64 = 60_000;
/// git's default `-M` threshold, 50%.
const MIN_SCORE: u64 = 30_000;
/// Renames with the same basename are accepted from this score (git's `min_basename_score`).
const MIN_BASENAME_SCORE: u64 = MIN_SCORE + (MAX_SCORE - MIN_SCORE) / 2;
/// git's `diff.renameLimit` default: the matrix is skipped above this many squared.
const RENAME_LIMIT: u64 = 1000;
/// git's `core.bigFileThreshold` default: larger blobs are binary, never read for a diff.
const BIG_FILE_THRESHOLD: u64 = 512 * 1024 * 1024;
/// git looks for NUL bytes in this many leading bytes to call a blob binary.
const FIRST_FEW_BYTES: usize = 8000;
/// git's `core.maxTreeDepth` default.
const MAX_TREE_DEPTH: usize = 2048;
/// Candidates kept per destination in the similarity matrix.
const CANDIDATES_PER_DST: usize = 4;

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// New file.
    Added,
    /// Contents or mode changed.
    Modified,
    /// File removed.
    Deleted,
    /// Moved, possibly with changes.
    Renamed,
    /// Copied (only with copy detection, which git's default and this module do not do).
    Copied,
    /// Kind changed: file, symlink or submodule.
    TypeChanged,
}

impl Status {
    /// The lowercase name (`added`, `modified`, `deleted`, `renamed`, `copied`, `type-changed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Modified => "modified",
            Status::Deleted => "deleted",
            Status::Renamed => "renamed",
            Status::Copied => "copied",
            Status::TypeChanged => "type-changed",
        }
    }
}

/// One file's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// The path after the change (the deleted path for deletions).
    pub path: String,
    /// The path before, for renames.
    pub old_path: Option<String>,
    /// What happened.
    pub status: Status,
    /// Added lines (0 for binary files).
    pub additions: u32,
    /// Removed lines (0 for binary files).
    pub deletions: u32,
    /// Whether either side is binary.
    pub binary: bool,
    /// For renames, git's similarity index in percent.
    pub similarity: Option<u32>,
    /// The file's part of the patch, exactly as git prints it (may be empty only if git prints
    /// nothing for it either).
    pub patch: Vec<u8>,
}

/// A commit's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitDiff {
    /// The commit.
    pub commit: ObjectId,
    /// The parent it is compared with (`None` for a root commit: the empty tree).
    pub parent: Option<ObjectId>,
    /// The files, in git's order.
    pub files: Vec<FileDiff>,
}

impl CommitDiff {
    /// The whole patch: the files' patches one after the other.
    pub fn patch(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in &self.files {
            out.extend_from_slice(&f.patch);
        }
        out
    }
}

/// Diffs the commit `name` names (branch, tag, sha) against its first parent.
pub fn commit(repo: &gix::Repository, name: &str) -> Result<CommitDiff, Error> {
    let id = super::resolve::commit(repo, name)?;
    commit_id(repo, id)
}

/// Diffs the commit `id` against its first parent.
pub fn commit_id(repo: &gix::Repository, id: ObjectId) -> Result<CommitDiff, Error> {
    let node = commit_node(repo, id)?;
    let parent = node.parents.first().copied();
    let old_tree = match parent {
        Some(p) => Some(commit_node(repo, p)?.tree),
        None => None,
    };
    let files = trees(repo, old_tree, Some(node.tree))?;
    Ok(CommitDiff {
        commit: id,
        parent,
        files,
    })
}

/// Diffs two trees (`None` is the empty tree) like `git diff -M <old> <new>`.
pub fn trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
) -> Result<Vec<FileDiff>, Error> {
    let mut raw = Vec::new();
    walk(repo, old, new, &mut Vec::new(), &mut raw, 0)?;
    let mut blobs = Blobs::new(repo);
    let pairs = detect_renames(&mut blobs, raw)?;
    let mut out = Vec::with_capacity(pairs.len());
    for pair in pairs {
        out.push(render(&mut blobs, &pair)?);
    }
    Ok(out)
}

/// One side of a changed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Side {
    /// Canonical mode (`0o100644`, …).
    mode: u32,
    id: ObjectId,
}

impl Side {
    fn is_regular(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
    fn format(&self) -> u32 {
        self.mode & 0o170000
    }
}

/// A path that differs between the trees.
#[derive(Debug, Clone)]
struct Raw {
    path: Vec<u8>,
    old: Option<Side>,
    new: Option<Side>,
}

/// A change to print: a plain change, or a rename from `old_path`.
#[derive(Debug, Clone)]
struct Pair {
    old_path: Vec<u8>,
    new_path: Vec<u8>,
    old: Option<Side>,
    new: Option<Side>,
    /// Rename score (0..=MAX_SCORE) when this is a rename.
    rename_score: Option<u64>,
}

/// git's tree diff: both trees in tree order, recursing into changed directories.
fn walk(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    base: &mut Vec<u8>,
    out: &mut Vec<Raw>,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_TREE_DEPTH {
        let id = new
            .or(old)
            .unwrap_or_else(|| ObjectId::null(repo.object_hash()));
        return Err(Error::object(id, "trees nested too deeply"));
    }
    let mut a = match old {
        Some(id) => tree_entries(repo, id)?,
        None => Vec::new(),
    };
    let mut b = match new {
        Some(id) => tree_entries(repo, id)?,
        None => Vec::new(),
    };
    let order = |x: &(Vec<u8>, gix::object::tree::EntryMode, ObjectId),
                 y: &(Vec<u8>, gix::object::tree::EntryMode, ObjectId)| {
        gix::objs::tree::name_order(&x.0, x.1.is_tree(), &y.0, y.1.is_tree())
    };
    a.sort_by(order);
    b.sort_by(order);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let cmp = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => order(x, y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        let len = base.len();
        match cmp {
            std::cmp::Ordering::Less => {
                let (name, mode, id) = &a[i];
                base.extend_from_slice(name);
                one_sided(repo, base, out, depth, Some((*mode, *id)), None)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let (name, mode, id) = &b[j];
                base.extend_from_slice(name);
                one_sided(repo, base, out, depth, None, Some((*mode, *id)))?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (name, mode_a, id_a) = &a[i];
                let (_, mode_b, id_b) = &b[j];
                base.extend_from_slice(name);
                if mode_a.is_tree() && mode_b.is_tree() {
                    if id_a != id_b {
                        base.push(b'/');
                        walk(repo, Some(*id_a), Some(*id_b), base, out, depth + 1)?;
                    }
                } else {
                    let (ma, mb) = (canonical_mode(*mode_a), canonical_mode(*mode_b));
                    if id_a != id_b || ma != mb {
                        out.push(Raw {
                            path: base.clone(),
                            old: Some(Side {
                                mode: ma,
                                id: *id_a,
                            }),
                            new: Some(Side {
                                mode: mb,
                                id: *id_b,
                            }),
                        });
                    }
                }
                i += 1;
                j += 1;
            }
        }
        base.truncate(len);
    }
    Ok(())
}

/// An entry only on one side: a file added or deleted, or a whole directory of them.
fn one_sided(
    repo: &gix::Repository,
    base: &mut Vec<u8>,
    out: &mut Vec<Raw>,
    depth: usize,
    old: Option<(gix::object::tree::EntryMode, ObjectId)>,
    new: Option<(gix::object::tree::EntryMode, ObjectId)>,
) -> Result<(), Error> {
    let (mode, id) = match old.or(new) {
        Some(x) => x,
        None => return Ok(()),
    };
    if mode.is_tree() {
        base.push(b'/');
        let (o, n) = if old.is_some() {
            (Some(id), None)
        } else {
            (None, Some(id))
        };
        return walk(repo, o, n, base, out, depth + 1);
    }
    let side = Side {
        mode: canonical_mode(mode),
        id,
    };
    out.push(Raw {
        path: base.clone(),
        old: old.map(|_| side),
        new: new.map(|_| side),
    });
    Ok(())
}

/// `diffcore-delta.c` span hashes: (hash, bytes), sorted by hash.
type Spans = Rc<Vec<(u32, u64)>>;

/// Blob contents and span hashes, loaded once per diff.
struct Blobs<'r> {
    repo: &'r gix::Repository,
    data: HashMap<ObjectId, Rc<Vec<u8>>>,
    sizes: HashMap<ObjectId, u64>,
    spans: HashMap<ObjectId, Spans>,
    abbrev: Option<Abbreviator>,
}

impl<'r> Blobs<'r> {
    fn new(repo: &'r gix::Repository) -> Self {
        Blobs {
            repo,
            data: HashMap::new(),
            sizes: HashMap::new(),
            spans: HashMap::new(),
            abbrev: None,
        }
    }

    fn size(&mut self, side: &Side) -> Result<u64, Error> {
        if side.format() == 0o160000 {
            return Ok(gitlink_text(&side.id).len() as u64);
        }
        if let Some(s) = self.sizes.get(&side.id) {
            return Ok(*s);
        }
        let s = self
            .repo
            .find_header(side.id)
            .map_err(|e| Error::object(side.id, e))?
            .size();
        self.sizes.insert(side.id, s);
        Ok(s)
    }

    /// The bytes git diffs for `side`, or `None` for blobs above the big-file threshold.
    fn data(&mut self, side: &Side) -> Result<Option<Rc<Vec<u8>>>, Error> {
        if side.format() == 0o160000 {
            return Ok(Some(Rc::new(gitlink_text(&side.id))));
        }
        if self.size(side)? > BIG_FILE_THRESHOLD {
            return Ok(None);
        }
        if let Some(d) = self.data.get(&side.id) {
            return Ok(Some(d.clone()));
        }
        let (kind, data) = load(self.repo, side.id)?;
        if kind != gix::object::Kind::Blob {
            return Err(Error::object(
                side.id,
                format!("expected a blob, found a {kind}"),
            ));
        }
        let d = Rc::new(data);
        self.data.insert(side.id, d.clone());
        Ok(Some(d))
    }

    fn is_binary(&mut self, side: &Side) -> Result<bool, Error> {
        Ok(match self.data(side)? {
            None => true,
            Some(d) => is_binary(&d),
        })
    }

    /// `diffcore-delta.c`'s span hashes of a regular file, sorted by hash.
    fn spans(&mut self, side: &Side) -> Result<Option<Spans>, Error> {
        if let Some(s) = self.spans.get(&side.id) {
            return Ok(Some(s.clone()));
        }
        let Some(data) = self.data(side)? else {
            return Ok(None);
        };
        let s = Rc::new(span_hashes(&data, !is_binary(&data)));
        self.spans.insert(side.id, s.clone());
        Ok(Some(s))
    }
}

fn gitlink_text(id: &ObjectId) -> Vec<u8> {
    format!("Subproject commit {id}\n").into_bytes()
}

/// git's `buffer_is_binary`: a NUL in the first 8000 bytes.
fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(FIRST_FEW_BYTES)].contains(&0)
}

/// `hash_chars()` of `diffcore-delta.c`: spans of up to 64 bytes ending at newlines, hashed,
/// with the bytes per hash summed. CR of CRLF is ignored in text.
fn span_hashes(data: &[u8], is_text: bool) -> Vec<(u32, u64)> {
    const HASHBASE: u32 = 107_927;
    let mut counts: HashMap<u32, u64> = HashMap::new();
    let (mut accum1, mut accum2, mut n) = (0u32, 0u32, 0u32);
    let mut i = 0;
    while i < data.len() {
        let c = u32::from(data[i]);
        i += 1;
        if is_text && c == u32::from(b'\r') && data.get(i) == Some(&b'\n') {
            continue;
        }
        let old_1 = accum1;
        accum1 = (accum1 << 7) ^ (accum2 >> 25);
        accum2 = (accum2 << 7) ^ (old_1 >> 25);
        accum1 = accum1.wrapping_add(c);
        n += 1;
        if n < 64 && c != u32::from(b'\n') {
            continue;
        }
        let h = accum1.wrapping_add(accum2.wrapping_mul(0x61)) % HASHBASE;
        *counts.entry(h).or_insert(0) += u64::from(n);
        n = 0;
        accum1 = 0;
        accum2 = 0;
    }
    if n > 0 {
        let h = accum1.wrapping_add(accum2.wrapping_mul(0x61)) % HASHBASE;
        *counts.entry(h).or_insert(0) += u64::from(n);
    }
    let mut v: Vec<(u32, u64)> = counts.into_iter().collect();
    v.sort_unstable();
    v
}

/// Bytes of `dst` that `src` accounts for (`src_copied` of `diffcore_count_changes`).
fn copied_bytes(src: &[(u32, u64)], dst: &[(u32, u64)]) -> u64 {
    let (mut i, mut j, mut copied) = (0, 0, 0);
    while i < src.len() && j < dst.len() {
        match src[i].0.cmp(&dst[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                copied += src[i].1.min(dst[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    copied
}

/// `estimate_similarity()` of `diffcore-rename.c`.
fn similarity(
    blobs: &mut Blobs<'_>,
    src: &Side,
    dst: &Side,
    minimum_score: u64,
) -> Result<u64, Error> {
    if !src.is_regular() || !dst.is_regular() {
        return Ok(0);
    }
    let (ss, ds) = (blobs.size(src)?, blobs.size(dst)?);
    let max_size = ss.max(ds);
    let delta = max_size - ss.min(ds);
    if max_size.saturating_mul(MAX_SCORE - minimum_score) < delta.saturating_mul(MAX_SCORE) {
        return Ok(0);
    }
    let (Some(sh), Some(dh)) = (blobs.spans(src)?, blobs.spans(dst)?) else {
        return Ok(0);
    };
    if ds == 0 {
        return Ok(0);
    }
    Ok(copied_bytes(&sh, &dh).saturating_mul(MAX_SCORE) / max_size)
}

fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(p) => &path[p + 1..],
        None => path,
    }
}

/// A candidate of the similarity matrix (`struct diff_score`).
#[derive(Debug, Clone, Copy)]
struct Score {
    src: usize,
    /// Index into the destinations; `None` for an empty slot.
    dst: Option<usize>,
    score: u64,
    name_score: u8,
}

/// `score_compare()`: better candidates first, empty slots last.
fn score_order(a: &Score, b: &Score) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.dst, b.dst) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        _ => {
            if a.score == b.score {
                b.name_score.cmp(&a.name_score)
            } else {
                b.score.cmp(&a.score)
            }
        }
    }
}

/// `diffcore_rename()` with git's defaults for `git diff -M` (no copies, no break).
fn detect_renames(blobs: &mut Blobs<'_>, raw: Vec<Raw>) -> Result<Vec<Pair>, Error> {
    // Sources are deletions, destinations additions, each in queue (tree) order.
    let srcs: Vec<usize> = (0..raw.len())
        .filter(|&i| raw[i].old.is_some() && raw[i].new.is_none())
        .collect();
    let dsts: Vec<usize> = (0..raw.len())
        .filter(|&i| raw[i].old.is_none() && raw[i].new.is_some())
        .collect();
    let mut src_used = vec![false; srcs.len()];
    // For each destination: (source index into `srcs`, score).
    let mut dst_rename: Vec<Option<(usize, u64)>> = vec![None; dsts.len()];
    let old_of = |s: usize| raw[srcs[s]].old.expect("sources are deletions");
    let new_of = |d: usize| raw[dsts[d]].new.expect("destinations are additions");

    if !srcs.is_empty() && !dsts.is_empty() {
        // 1. Exact renames: same blob; non-regular files need the same mode. Prefer an unused
        //    source with the same basename, else the first unused one.
        let mut by_id: HashMap<ObjectId, Vec<usize>> = HashMap::new();
        for s in 0..srcs.len() {
            by_id.entry(old_of(s).id).or_default().push(s);
        }
        for d in 0..dsts.len() {
            let target = new_of(d);
            let Some(cands) = by_id.get(&target.id) else {
                continue;
            };
            let mut best: Option<(usize, u8)> = None;
            // git gives up after 100 usable identical alternatives.
            let mut alternatives = 100;
            for &s in cands {
                let source = old_of(s);
                if (!source.is_regular() || !target.is_regular()) && source.mode != target.mode {
                    continue;
                }
                if src_used[s] {
                    continue;
                }
                let score =
                    1 + u8::from(basename(&raw[srcs[s]].path) == basename(&raw[dsts[d]].path));
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((s, score));
                    if score == 2 {
                        break;
                    }
                }
                alternatives -= 1;
                if alternatives == 0 {
                    break;
                }
            }
            if let Some((s, _)) = best {
                dst_rename[d] = Some((s, MAX_SCORE));
                src_used[s] = true;
            }
        }

        // 2. Same basename, unique among the remaining sources and among the remaining
        //    destinations, similar enough.
        let mut src_base: HashMap<&[u8], Option<usize>> = HashMap::new();
        for s in (0..srcs.len()).filter(|&s| !src_used[s]) {
            let b = basename(&raw[srcs[s]].path);
            src_base
                .entry(b)
                .and_modify(|v| *v = None)
                .or_insert(Some(s));
        }
        let mut dst_base: HashMap<&[u8], Option<usize>> = HashMap::new();
        for d in (0..dsts.len()).filter(|&d| dst_rename[d].is_none()) {
            let b = basename(&raw[dsts[d]].path);
            dst_base
                .entry(b)
                .and_modify(|v| *v = None)
                .or_insert(Some(d));
        }
        for s in 0..srcs.len() {
            if src_used[s] {
                continue;
            }
            let b = basename(&raw[srcs[s]].path);
            let (Some(Some(unique_s)), Some(Some(d))) = (src_base.get(b), dst_base.get(b)) else {
                continue;
            };
            if *unique_s != s || dst_rename[*d].is_some() {
                continue;
            }
            let score = similarity(blobs, &old_of(s), &new_of(*d), MIN_BASENAME_SCORE)?;
            if score < MIN_BASENAME_SCORE {
                continue;
            }
            dst_rename[*d] = Some((s, score));
            src_used[s] = true;
        }

        // 3. The similarity matrix over what is left.
        let left_srcs: Vec<usize> = (0..srcs.len()).filter(|&s| !src_used[s]).collect();
        let left_dsts: Vec<usize> = (0..dsts.len())
            .filter(|&d| dst_rename[d].is_none())
            .collect();
        let candidates = (left_srcs.len() as u64).saturating_mul(left_dsts.len() as u64);
        if !left_srcs.is_empty()
            && !left_dsts.is_empty()
            && candidates <= RENAME_LIMIT * RENAME_LIMIT
        {
            let empty = Score {
                src: 0,
                dst: None,
                score: 0,
                name_score: 0,
            };
            let mut matrix: Vec<Score> = Vec::with_capacity(left_dsts.len() * CANDIDATES_PER_DST);
            for &d in &left_dsts {
                let mut m = [empty; CANDIDATES_PER_DST];
                for &s in &left_srcs {
                    let this = Score {
                        src: s,
                        dst: Some(d),
                        score: similarity(blobs, &old_of(s), &new_of(d), MIN_SCORE)?,
                        name_score: u8::from(
                            basename(&raw[srcs[s]].path) == basename(&raw[dsts[d]].path),
                        ),
                    };
                    // record_if_better(): replace the worst slot if `this` beats it.
                    let mut worst = 0;
                    for i in 1..CANDIDATES_PER_DST {
                        if score_order(&m[i], &m[worst]) == std::cmp::Ordering::Greater {
                            worst = i;
                        }
                    }
                    if score_order(&m[worst], &this) == std::cmp::Ordering::Greater {
                        m[worst] = this;
                    }
                }
                matrix.extend_from_slice(&m);
            }
            matrix.sort_by(score_order);
            for cand in &matrix {
                let Some(d) = cand.dst else { break };
                if cand.score < MIN_SCORE {
                    break;
                }
                if dst_rename[d].is_some() || src_used[cand.src] {
                    continue;
                }
                dst_rename[d] = Some((cand.src, cand.score));
                src_used[cand.src] = true;
            }
        }
    }

    // The output queue: renames take their destination's place; their sources disappear.
    let mut dst_index: HashMap<usize, usize> = HashMap::new();
    for (d, &r) in dsts.iter().enumerate() {
        dst_index.insert(r, d);
    }
    let mut src_index: HashMap<usize, usize> = HashMap::new();
    for (s, &r) in srcs.iter().enumerate() {
        src_index.insert(r, s);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        if let Some(&d) = dst_index.get(&i) {
            if let Some((s, score)) = dst_rename[d] {
                let src = &raw[srcs[s]];
                out.push(Pair {
                    old_path: src.path.clone(),
                    new_path: r.path.clone(),
                    old: src.old,
                    new: r.new,
                    rename_score: Some(score),
                });
                continue;
            }
        }
        if let Some(&s) = src_index.get(&i) {
            if src_used[s] {
                continue;
            }
        }
        out.push(Pair {
            old_path: r.path.clone(),
            new_path: r.path.clone(),
            old: r.old,
            new: r.new,
            rename_score: None,
        });
    }
    Ok(out)
}

/// Renders one pair as git does (`run_diff()`), splitting type changes in two.
fn render(blobs: &mut Blobs<'_>, pair: &Pair) -> Result<FileDiff, Error> {
    let status = match (pair.old, pair.new) {
        (None, _) => Status::Added,
        (_, None) => Status::Deleted,
        (Some(_), Some(_)) if pair.rename_score.is_some() => Status::Renamed,
        (Some(a), Some(b)) if a.format() != b.format() => Status::TypeChanged,
        _ => Status::Modified,
    };
    let mut patch = Vec::new();
    let mut stats = Stats::default();
    if status == Status::TypeChanged {
        render_one(blobs, pair, pair.old, None, &mut patch, &mut stats)?;
        render_one(blobs, pair, None, pair.new, &mut patch, &mut stats)?;
    } else {
        render_one(blobs, pair, pair.old, pair.new, &mut patch, &mut stats)?;
    }
    Ok(FileDiff {
        path: String::from_utf8_lossy(&pair.new_path).into_owned(),
        old_path: (status == Status::Renamed)
            .then(|| String::from_utf8_lossy(&pair.old_path).into_owned()),
        status,
        additions: stats.additions,
        deletions: stats.deletions,
        binary: stats.binary,
        similarity: pair
            .rename_score
            .map(|s| u32::try_from(s * 100 / MAX_SCORE).unwrap_or(100)),
        patch,
    })
}

#[derive(Debug, Default)]
struct Stats {
    additions: u32,
    deletions: u32,
    binary: bool,
}

/// `builtin_diff()` for one (possibly half of a) pair.
fn render_one(
    blobs: &mut Blobs<'_>,
    pair: &Pair,
    one: Option<Side>,
    two: Option<Side>,
    out: &mut Vec<u8>,
    stats: &mut Stats,
) -> Result<(), Error> {
    let renamed = pair.rename_score.is_some();
    let name = &pair.old_path;
    let other = if renamed { &pair.new_path } else { name };
    let a_one = quote_two(b"a/", name);
    let b_two = quote_two(b"b/", other);
    let lbl0: &[u8] = if one.is_some() { &a_one } else { b"/dev/null" };
    let lbl1: &[u8] = if two.is_some() { &b_two } else { b"/dev/null" };

    // fill_metainfo()
    let mut meta = Vec::new();
    let mut must_show_header = false;
    if let Some(score) = pair.rename_score {
        must_show_header = true;
        meta.extend_from_slice(
            format!("similarity index {}%\n", score * 100 / MAX_SCORE).as_bytes(),
        );
        meta.extend_from_slice(b"rename from ");
        meta.extend_from_slice(&quote_c_style(name));
        meta.extend_from_slice(b"\nrename to ");
        meta.extend_from_slice(&quote_c_style(other));
        meta.push(b'\n');
    }
    let null = ObjectId::null(blobs.repo.object_hash());
    let (one_id, one_mode) = one.map_or((null, 0), |s| (s.id, s.mode));
    let (two_id, two_mode) = two.map_or((null, 0), |s| (s.id, s.mode));
    if one_id != two_id {
        meta.extend_from_slice(b"index ");
        let repo = blobs.repo;
        let abbrev = blobs.abbrev.get_or_insert_with(|| Abbreviator::new(repo));
        let (one, two) = (
            abbrev.abbreviate(repo, &one_id),
            abbrev.abbreviate(repo, &two_id),
        );
        meta.extend_from_slice(one.as_bytes());
        meta.extend_from_slice(b"..");
        meta.extend_from_slice(two.as_bytes());
        if one_mode == two_mode {
            meta.extend_from_slice(format!(" {one_mode:06o}").as_bytes());
        }
        meta.push(b'\n');
    }

    let mut header = Vec::new();
    header.extend_from_slice(b"diff --git ");
    header.extend_from_slice(&a_one);
    header.push(b' ');
    header.extend_from_slice(&b_two);
    header.push(b'\n');
    match (one, two) {
        (None, Some(t)) => {
            header.extend_from_slice(format!("new file mode {:06o}\n", t.mode).as_bytes());
            header.extend_from_slice(&meta);
            must_show_header = true;
        }
        (Some(o), None) => {
            header.extend_from_slice(format!("deleted file mode {:06o}\n", o.mode).as_bytes());
            header.extend_from_slice(&meta);
            must_show_header = true;
        }
        (Some(o), Some(t)) => {
            if o.mode != t.mode {
                header.extend_from_slice(format!("old mode {:06o}\n", o.mode).as_bytes());
                header.extend_from_slice(format!("new mode {:06o}\n", t.mode).as_bytes());
                must_show_header = true;
            }
            header.extend_from_slice(&meta);
        }
        (None, None) => return Ok(()),
    }

    let one_binary = match &one {
        Some(s) => blobs.is_binary(s)?,
        None => false,
    };
    let two_binary = match &two {
        Some(s) => blobs.is_binary(s)?,
        None => false,
    };
    if one_binary || two_binary {
        stats.binary = true;
        // Identical blobs have identical contents; otherwise git says they differ.
        if one_id == two_id {
            if must_show_header {
                out.extend_from_slice(&header);
            }
            return Ok(());
        }
        out.extend_from_slice(&header);
        out.extend_from_slice(b"Binary files ");
        out.extend_from_slice(lbl0);
        out.extend_from_slice(b" and ");
        out.extend_from_slice(lbl1);
        out.extend_from_slice(b" differ\n");
        return Ok(());
    }

    let empty = Rc::new(Vec::new());
    let a = match &one {
        Some(s) => blobs.data(s)?.unwrap_or_else(|| empty.clone()),
        None => empty.clone(),
    };
    let b = match &two {
        Some(s) => blobs.data(s)?.unwrap_or_else(|| empty.clone()),
        None => empty.clone(),
    };
    let mut hunks = Vec::new();
    let (adds, dels) = unified(&a, &b, &mut hunks);
    stats.additions += adds;
    stats.deletions += dels;
    if hunks.is_empty() {
        if must_show_header {
            out.extend_from_slice(&header);
        }
        return Ok(());
    }
    out.extend_from_slice(&header);
    for (prefix, lbl) in [(&b"--- "[..], lbl0), (&b"+++ "[..], lbl1)] {
        out.extend_from_slice(prefix);
        out.extend_from_slice(lbl);
        if lbl.contains(&b' ') {
            out.push(b'\t');
        }
        out.push(b'\n');
    }
    out.extend_from_slice(&hunks);
    Ok(())
}

/// Splits into lines, each with its `\n` (the last may lack one).
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push(&data[start..=i]);
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

/// git's whitespace for the function-line rule (`sane_ctype`: space, `\t`, `\n`, `\r`).
fn is_git_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `def_ff()`: a line starting with a letter, `_` or `$`, cut to 80 bytes, trailing
/// whitespace removed.
fn function_line(line: &[u8]) -> Option<&[u8]> {
    let first = *line.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'$') {
        return None;
    }
    let mut len = line.len().min(80);
    while len > 0 && is_git_space(line[len - 1]) {
        len -= 1;
    }
    Some(&line[..len])
}

/// Writes the hunks of a line diff between `a` and `b` as xdiff emits them; answers
/// (additions, deletions).
fn unified(a: &[u8], b: &[u8], out: &mut Vec<u8>) -> (u32, u32) {
    let la = lines(a);
    let lb = lines(b);
    let mut input: InternedInput<&[u8]> = InternedInput::default();
    input.update_before(la.iter().copied());
    input.update_after(lb.iter().copied());
    let mut diff = Diff::compute(Algorithm::Myers, &input);
    diff.postprocess_lines(&input);
    let changes: Vec<(u32, u32, u32, u32)> = diff
        .hunks()
        .map(|h| {
            (
                h.before.start,
                h.before.end - h.before.start,
                h.after.start,
                h.after.end - h.after.start,
            )
        })
        .collect();
    let (n1, n2) = (la.len() as u32, lb.len() as u32);
    let mut func: Option<&[u8]> = None;
    let mut funcline_prev: i64 = -1;
    let mut k = 0;
    while k < changes.len() {
        // xdl_get_hunk(): join changes at most 2*CONTEXT lines apart.
        let mut last = k;
        while last + 1 < changes.len() {
            let (i1, c1, _, _) = changes[last];
            let distance = changes[last + 1].0 - (i1 + c1);
            if distance > 2 * CONTEXT {
                break;
            }
            last += 1;
        }
        let (fi1, _, fi2, _) = changes[k];
        let (li1, lc1, li2, lc2) = changes[last];
        let s1 = fi1.saturating_sub(CONTEXT);
        let s2 = fi2.saturating_sub(CONTEXT);
        let lctx = CONTEXT.min(n1 - (li1 + lc1)).min(n2 - (li2 + lc2));
        let e1 = li1 + lc1 + lctx;
        let e2 = li2 + lc2 + lctx;

        // get_func_line(): search backwards from the line before the hunk down to (not
        // including) where the previous search started; keep the previous name if none.
        let start = i64::from(s1) - 1;
        let mut l = start;
        while l > funcline_prev && l >= 0 {
            if let Some(f) = la.get(l as usize).and_then(|line| function_line(line)) {
                func = Some(f);
                break;
            }
            l -= 1;
        }
        funcline_prev = start;

        hunk_header(s1 + 1, e1 - s1, s2 + 1, e2 - s2, func, out);
        let mut s2 = s2;
        while s2 < fi2 {
            record(b' ', lb[s2 as usize], out);
            s2 += 1;
        }
        let mut x1 = fi1;
        let mut x2 = fi2;
        for (idx, &(i1, c1, i2, c2)) in changes[k..=last].iter().enumerate() {
            if idx > 0 {
                while x1 < i1 && x2 < i2 {
                    record(b' ', lb[x2 as usize], out);
                    x1 += 1;
                    x2 += 1;
                }
            }
            for line in &la[i1 as usize..(i1 + c1) as usize] {
                record(b'-', line, out);
            }
            for line in &lb[i2 as usize..(i2 + c2) as usize] {
                record(b'+', line, out);
            }
            x1 = i1 + c1;
            x2 = i2 + c2;
        }
        let mut t = li2 + lc2;
        while t < e2 {
            record(b' ', lb[t as usize], out);
            t += 1;
        }
        k = last + 1;
    }
    (diff.count_additions(), diff.count_removals())
}

/// `xdl_emit_hunk_hdr()` (its 128-byte buffer included).
fn hunk_header(s1: u32, c1: u32, s2: u32, c2: u32, func: Option<&[u8]>, out: &mut Vec<u8>) {
    let mut h = String::from("@@ -");
    h.push_str(&(if c1 > 0 { s1 } else { s1 - 1 }).to_string());
    if c1 != 1 {
        h.push_str(&format!(",{c1}"));
    }
    h.push_str(" +");
    h.push_str(&(if c2 > 0 { s2 } else { s2 - 1 }).to_string());
    if c2 != 1 {
        h.push_str(&format!(",{c2}"));
    }
    h.push_str(" @@");
    out.extend_from_slice(h.as_bytes());
    if let Some(f) = func.filter(|f| !f.is_empty()) {
        out.push(b' ');
        let room = 128usize.saturating_sub(h.len() + 1 + 1);
        out.extend_from_slice(&f[..f.len().min(room)]);
    }
    out.push(b'\n');
}

/// `xdl_emit_diffrec()`: one line with its prefix, and git's marker if it lacks a newline.
fn record(prefix: u8, line: &[u8], out: &mut Vec<u8>) {
    out.push(prefix);
    out.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
}

/// Whether git's `quote_c_style()` quotes a byte (with `core.quotePath` on).
fn must_quote(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f
}

fn push_quoted(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if must_quote(b) => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            b => out.push(b),
        }
    }
}

/// `quote_c_style()`: the name, in double quotes with C escapes if it needs any.
fn quote_c_style(name: &[u8]) -> Vec<u8> {
    if !name.iter().any(|b| must_quote(*b)) {
        return name.to_vec();
    }
    let mut out = vec![b'"'];
    push_quoted(&mut out, name);
    out.push(b'"');
    out
}

/// `quote_two()`: prefix and name together, quoted if either needs it.
fn quote_two(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if !prefix.iter().chain(name).any(|b| must_quote(*b)) {
        let mut out = prefix.to_vec();
        out.extend_from_slice(name);
        return out;
    }
    let mut out = vec![b'"'];
    push_quoted(&mut out, prefix);
    push_quoted(&mut out, name);
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::read::testutil::{git, git_at, init, open};
    use std::path::Path;

    /// Every commit on `main` (and merged branches): our patch, statuses and counts against git's.
    fn compare_all_commits(dir: &Path) {
        let repo = open(dir);
        let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
        let revs = git(dir, &["rev-list", "--all"]);
        let mut checked = 0;
        for rev in revs.lines() {
            let id = ObjectId::from_hex(rev.as_bytes()).expect("hex");
            let ours = commit_id(&repo, id).expect("diff");
            let parent = ours
                .parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| empty_tree.to_owned());
            let theirs = git(dir, &["diff", "--no-color", "-M", &parent, rev]);
            let patch = String::from_utf8_lossy(&ours.patch()).into_owned();
            if patch != theirs {
                let subject = git(dir, &["log", "-1", "--format=%s", rev]);
                panic!(
                    "patch of {rev} ({}) differs\n--- ours ---\n{patch}\n--- git ---\n{theirs}",
                    subject.trim()
                );
            }
            let status = git(dir, &["diff", "--name-status", "-M", &parent, rev]);
            let ours_status: Vec<String> = ours
                .files
                .iter()
                .map(|f| {
                    let code = match f.status {
                        Status::Added => "A".to_owned(),
                        Status::Deleted => "D".to_owned(),
                        Status::Modified => "M".to_owned(),
                        Status::TypeChanged => "T".to_owned(),
                        Status::Copied => "C".to_owned(),
                        Status::Renamed => format!("R{:03}", f.similarity.unwrap_or(0)),
                    };
                    match &f.old_path {
                        Some(old) => format!("{code}\t{}\t{}", quote_c(old), quote_c(&f.path)),
                        None => format!("{code}\t{}", quote_c(&f.path)),
                    }
                })
                .collect();
            assert_eq!(
                ours_status,
                status.lines().map(str::to_owned).collect::<Vec<_>>(),
                "name-status of {rev}"
            );
            let numstat = git(dir, &["diff", "--numstat", "-M", &parent, rev]);
            let ours_num: Vec<String> = ours
                .files
                .iter()
                .map(|f| {
                    if f.binary {
                        "-\t-".to_owned()
                    } else {
                        format!("{}\t{}", f.additions, f.deletions)
                    }
                })
                .collect();
            let theirs_num: Vec<String> = numstat
                .lines()
                .map(|l| l.splitn(3, '\t').take(2).collect::<Vec<_>>().join("\t"))
                .collect();
            assert_eq!(ours_num, theirs_num, "numstat of {rev}");
            checked += 1;
        }
        assert!(checked > 0);
    }

    fn quote_c(s: &str) -> String {
        String::from_utf8(quote_c_style(s.as_bytes())).expect("ascii")
    }

    fn write(dir: &Path, path: &str, content: &[u8]) {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    fn commit_all(dir: &Path, msg: &str, n: &mut u64) {
        *n += 1;
        git(dir, &["add", "-A"]);
        git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", msg],
            &format!("{} +0000", 1_700_000_000 + *n * 10),
        );
    }

    fn chmod_x(dir: &Path, path: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(path), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }

    fn numbered(n: usize, tag: &str) -> String {
        (0..n).map(|i| format!("{tag} line {i}\n")).collect()
    }

    #[test]
    fn patches_match_git_on_a_varied_history() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut n = 0;
        write(dir, "README", b"hello\nworld\n");
        write(
            dir,
            "src/main.rs",
            b"fn main() {\n    println!(\"hi\");\n}\n",
        );
        write(
            dir,
            "src/lib/deep/nested.txt",
            numbered(40, "nested").as_bytes(),
        );
        write(dir, "bin.dat", &[0u8, 1, 2, 3, 255, 0, 10]);
        write(dir, "noeol", b"first\nlast");
        write(dir, "with space.txt", b"spaced\n");
        write(dir, "na\u{ef}ve.txt", b"unicode\n");
        write(dir, "empty-a", b"");
        commit_all(dir, "root", &mut n);

        // Modify with context, function lines and multiple hunks.
        let mut text = String::from("int alpha(void)\n{\n");
        for i in 0..30 {
            text.push_str(&format!("    step {i};\n"));
        }
        text.push_str("}\n\nint beta(void)\n{\n");
        for i in 0..30 {
            text.push_str(&format!("    other {i};\n"));
        }
        text.push_str("}\n");
        write(dir, "code.c", text.as_bytes());
        commit_all(dir, "add code", &mut n);
        let edited = text
            .replace("    step 5;\n", "    step five;\n")
            .replace("    step 20;\n", "")
            .replace("    other 25;\n", "    other 25;\n    inserted;\n");
        write(dir, "code.c", edited.as_bytes());
        write(dir, "noeol", b"first\nlast changed");
        write(dir, "README", b"hello\nworld\nmore\n");
        commit_all(dir, "edit hunks", &mut n);

        // Newline added at end, and removed elsewhere.
        write(dir, "noeol", b"first\nlast changed\n");
        write(dir, "README", b"hello\nworld\nmore");
        commit_all(dir, "eol changes", &mut n);

        // Exact rename, inexact rename across directories, rename with mode change.
        std::fs::rename(
            dir.join("src/lib/deep/nested.txt"),
            dir.join("moved/nested.txt"),
        )
        .unwrap_or_else(|_| {
            std::fs::create_dir_all(dir.join("moved")).expect("mkdir");
            std::fs::rename(
                dir.join("src/lib/deep/nested.txt"),
                dir.join("moved/nested.txt"),
            )
            .expect("rename");
        });
        let mut code = std::fs::read_to_string(dir.join("code.c")).expect("read");
        code = code.replace("    step 1;\n", "    step one;\n");
        std::fs::remove_file(dir.join("code.c")).expect("rm");
        write(dir, "renamed.c", code.as_bytes());
        commit_all(dir, "renames", &mut n);
        git(dir, &["mv", "with space.txt", "still spaced.txt"]);
        chmod_x(dir, "still spaced.txt");
        commit_all(dir, "rename with mode", &mut n);
        write(dir, "still spaced.txt", b"spaced\nand changed\n");
        chmod_x(dir, "still spaced.txt");
        let nested = std::fs::read_to_string(dir.join("moved/nested.txt")).expect("read");
        std::fs::remove_file(dir.join("moved/nested.txt")).expect("rm");
        write(
            dir,
            "elsewhere/nested.txt",
            nested.replace("nested line 7\n", "line seven\n").as_bytes(),
        );
        commit_all(dir, "same basename, edited; spaced name edited", &mut n);

        // Mode change only, deletion, empty files added, binary modified.
        chmod_x(dir, "README");
        std::fs::remove_file(dir.join("na\u{ef}ve.txt")).expect("rm");
        write(dir, "empty-b", b"");
        write(dir, "sub/empty-c", b"");
        write(dir, "bin.dat", &[0u8, 1, 2, 3, 4, 255, 0, 10, 11]);
        commit_all(dir, "modes and empties", &mut n);

        // Renaming an empty file; two identical files moved; binary rename.
        git(dir, &["mv", "empty-a", "sub/empty-a"]);
        write(dir, "dup1", numbered(10, "dup").as_bytes());
        write(dir, "dup2", numbered(10, "dup").as_bytes());
        commit_all(dir, "dups", &mut n);
        std::fs::create_dir_all(dir.join("d")).expect("mkdir");
        git(dir, &["mv", "dup1", "d/dup1"]);
        git(dir, &["mv", "dup2", "d/x2"]);
        git(dir, &["mv", "bin.dat", "d/bin.dat"]);
        commit_all(dir, "move dups", &mut n);

        // Type changes: file to symlink, and a submodule entry.
        std::fs::remove_file(dir.join("noeol")).expect("rm");
        std::os::unix::fs::symlink("README", dir.join("noeol")).expect("symlink");
        let head = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        git(
            dir,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{head},gitlink"),
            ],
        );
        git_at(
            dir,
            &["commit", "-q", "-m", "type changes"],
            "1700001000 +0000",
        );
        write(dir, "gitlink", b"now a file\n");
        git(dir, &["rm", "-q", "--cached", "gitlink"]);
        commit_all(dir, "gitlink to file", &mut n);

        // A file replaced by a directory of the same name.
        std::fs::remove_file(dir.join("README")).expect("rm");
        write(dir, "README/inside", b"hello\nworld\nmore");
        commit_all(dir, "file to dir", &mut n);

        // Paths needing quotes.
        write(dir, "tab\there", b"t\n");
        write(dir, "quote\"d", b"q\n");
        commit_all(dir, "odd names", &mut n);

        // A merge, diffed against its first parent.
        git(dir, &["checkout", "-q", "-b", "side"]);
        write(dir, "side.txt", b"from side\n");
        write(
            dir,
            "renamed.c",
            code.replace("    other 3;\n", "    other three;\n")
                .as_bytes(),
        );
        commit_all(dir, "side work", &mut n);
        git(dir, &["checkout", "-q", "main"]);
        write(dir, "main.txt", b"from main\n");
        commit_all(dir, "main work", &mut n);
        git_at(
            dir,
            &["merge", "-q", "--no-ff", "-m", "merge", "side"],
            "1700002000 +0000",
        );
        compare_all_commits(dir);
    }

    #[test]
    fn patches_match_git_on_random_edits() {
        let seeds = env_or("ORBIT_DIFF_SEEDS", 2);
        for seed in 0..seeds {
            random_history(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
    }

    fn env_or(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    fn random_history(seed: u64) {
        let lines = env_or("ORBIT_DIFF_LINES", 60);
        let edits = env_or("ORBIT_DIFF_EDITS", 8);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let vocabulary = [
            "{",
            "}",
            "",
            "return x;",
            "if (a) {",
            "} else {",
            "int x = 0;",
            "  x++;",
            "    nested();",
            "// comment",
            "fn f() {",
            "end",
            "\t tab",
            "x",
            "y",
        ];
        let mut state: u64 = seed | 1;
        let mut rnd = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let mut files: Vec<Vec<String>> = (0..4)
            .map(|_| {
                (0..lines)
                    .map(|_| vocabulary[rnd(vocabulary.len() as u64) as usize].to_owned())
                    .collect()
            })
            .collect();
        let mut names: Vec<String> = (0..files.len()).map(|i| format!("f{i}.txt")).collect();
        let dirs = ["", "a/", "b/c/"];
        let mut n = 0;
        for round in 0..25 {
            for (i, f) in files.iter_mut().enumerate() {
                if round > 0 && rnd(4) == 0 {
                    // Move the file: same basename elsewhere, or a new name.
                    std::fs::remove_file(dir.join(&names[i])).expect("rm");
                    let base = if rnd(2) == 0 {
                        names[i].rsplit('/').next().unwrap_or("x").to_owned()
                    } else {
                        format!("g{i}_{round}.txt")
                    };
                    names[i] = format!("{}{base}", dirs[rnd(3) as usize]);
                }
                if round > 0 && rnd(3) == 0 {
                    let mut content = f.join("\n");
                    content.push('\n');
                    write(dir, &names[i], content.as_bytes());
                    continue;
                }
                for _ in 0..rnd(edits) {
                    let len = f.len() as u64;
                    match rnd(3) {
                        0 if len > 0 => {
                            let at = rnd(len) as usize;
                            f.remove(at);
                        }
                        1 => {
                            let at = rnd(len + 1) as usize;
                            let word = vocabulary[rnd(vocabulary.len() as u64) as usize];
                            f.insert(at, word.to_owned());
                        }
                        _ if len > 0 => {
                            let at = rnd(len) as usize;
                            f[at] = vocabulary[rnd(vocabulary.len() as u64) as usize].to_owned();
                        }
                        _ => {}
                    }
                }
                let mut content = f.join("\n");
                if rnd(4) != 0 {
                    content.push('\n');
                }
                write(dir, &names[i], content.as_bytes());
            }
            commit_all(dir, &format!("round {round}"), &mut n);
        }
        compare_all_commits(dir);
    }

    #[test]
    fn quoting_follows_git() {
        assert_eq!(quote_two(b"a/", b"plain name"), b"a/plain name");
        assert_eq!(
            quote_two(b"a/", "na\u{ef}ve".as_bytes()),
            b"\"a/na\\303\\257ve\""
        );
        assert_eq!(quote_c_style(b"tab\there"), b"\"tab\\there\"");
        assert_eq!(quote_c_style(b"q\"b\\"), b"\"q\\\"b\\\\\"");
    }

    #[test]
    fn function_lines() {
        assert_eq!(function_line(b"fn main() {\n"), Some(&b"fn main() {"[..]));
        assert_eq!(function_line(b"  indented\n"), None);
        assert_eq!(function_line(b"$var  \r\n"), Some(&b"$var"[..]));
        let long = [b'x'; 100];
        assert_eq!(function_line(&long).map(<[u8]>::len), Some(80));
    }

    #[test]
    fn hunk_headers() {
        let mut out = Vec::new();
        hunk_header(1, 0, 1, 3, None, &mut out);
        hunk_header(5, 1, 5, 1, Some(b"fn f()"), &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "@@ -0,0 +1,3 @@\n@@ -5 +5 @@ fn f()\n"
        );
    }

    #[test]
    fn span_hashes_count_bytes() {
        let text = b"line one\nline two\n";
        let h = span_hashes(text, true);
        assert_eq!(h.iter().map(|(_, n)| n).sum::<u64>(), text.len() as u64);
        assert_eq!(copied_bytes(&h, &h), text.len() as u64);
        let crlf = span_hashes(b"line one\r\nline two\r\n", true);
        assert_eq!(crlf, h);
    }
}
