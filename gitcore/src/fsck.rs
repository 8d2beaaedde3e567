//! fsck-style checks on pushed objects, following git's `transfer.fsckObjects` error-level rules.
//! Warning-level findings (`badFilemode`, `zeroPaddedFilemode`, ...) do not reject a push.

use gix::bstr::ByteSlice;
use gix::objs::TreeRef;

/// Errors of [`check_tree`]; the text is shown to the pusher.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// An entry with an empty name.
    #[error("empty entry name")]
    EmptyName,
    /// `.` or `..`.
    #[error("entry named {0:?}")]
    DotName(String),
    /// `.git` in any case, or an NTFS/HFS alias of it.
    #[error("entry named {0:?} (a .git directory)")]
    DotGit(String),
    /// A `/` inside a name.
    #[error("entry name {0:?} contains a slash")]
    Slash(String),
    /// Entries not in git's order, or the same name twice.
    #[error("entries are not sorted or not unique near {0:?}")]
    Order(String),
}

/// Whether `name` would be `.git` on a case-insensitive, HFS+ or NTFS file system.
fn is_dot_git(name: &[u8]) -> bool {
    if name.is_ascii() {
        return is_dot_git_ascii(name);
    }
    // HFS+ ignores some zero-width code points; drop them before comparing.
    let cleaned: Vec<u8> = {
        let s = name.to_str_lossy();
        s.chars()
            .filter(|c| !matches!(*c, '\u{200c}' | '\u{200d}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'))
            .collect::<String>()
            .into_bytes()
    };
    is_dot_git_ascii(&cleaned)
}

/// [`is_dot_git`] for a name without ignorable code points; allocates nothing.
fn is_dot_git_ascii(name: &[u8]) -> bool {
    // NTFS: trailing dots and spaces are ignored, `git~1` is the short name.
    let mut t = name;
    while let [rest @ .., b'.' | b' '] = t {
        t = rest;
    }
    const STREAM: &[u8] = b".git::$index_allocation";
    t.eq_ignore_ascii_case(b".git")
        || t.eq_ignore_ascii_case(b"git~1")
        || (t.len() >= STREAM.len() && t[..STREAM.len()].eq_ignore_ascii_case(STREAM))
}

/// Checks one tree entry name against the same rules as [`check_tree`] (order aside).
pub fn check_name(name: &[u8]) -> Result<(), Error> {
    let shown = || name.to_str_lossy().into_owned();
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    if name == b"." || name == b".." {
        return Err(Error::DotName(shown()));
    }
    if name.contains(&b'/') {
        return Err(Error::Slash(shown()));
    }
    if is_dot_git(name) {
        return Err(Error::DotGit(shown()));
    }
    Ok(())
}

/// git's tree order: names compared as if a directory's ended in `/`.
fn tree_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let common = a.len().min(b.len());
    match a[..common].cmp(&b[..common]) {
        std::cmp::Ordering::Equal => {}
        other => return other,
    }
    let next = |n: &[u8], tree: bool| n.get(common).copied().or(tree.then_some(b'/'));
    next(a, a_tree).cmp(&next(b, b_tree))
}

/// Checks a tree's entries one at a time, in their order, by git's error-level fsck rules.
#[derive(Default)]
pub struct TreeChecker<'a> {
    previous: Option<(&'a [u8], bool)>,
}

impl<'a> TreeChecker<'a> {
    /// The next entry of the tree.
    pub fn entry(&mut self, name: &'a [u8], is_tree: bool) -> Result<(), Error> {
        check_name(name)?;
        if let Some((prev, prev_tree)) = self.previous {
            if prev == name || tree_order(prev, prev_tree, name, is_tree).is_ge() {
                return Err(Error::Order(name.to_str_lossy().into_owned()));
            }
        }
        self.previous = Some((name, is_tree));
        Ok(())
    }
}

/// Checks a tree's entries by git's error-level fsck rules.
pub fn check_tree(tree: &TreeRef<'_>) -> Result<(), Error> {
    let mut checker = TreeChecker::default();
    for e in &tree.entries {
        checker.entry(e.filename.as_ref(), e.mode.is_tree())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_git_aliases() {
        for n in [
            ".git",
            ".GIT",
            ".Git. ",
            "git~1",
            ".git\u{200c}",
            ".git::$INDEX_ALLOCATION",
        ] {
            assert!(is_dot_git(n.as_bytes()), "{n:?}");
        }
        for n in [
            ".gitignore",
            "git",
            ".github",
            "x.git",
            ".gi",
            "",
            ".git::$index",
            "é.git",
        ] {
            assert!(!is_dot_git(n.as_bytes()), "{n:?}");
        }
    }

    #[test]
    fn entries_follow_gits_tree_order() {
        use std::cmp::Ordering::*;
        // "a" as a directory sorts as "a/", after "a.txt" ('.' < '/') and before "a0".
        assert_eq!(tree_order(b"a.txt", false, b"a", true), Less);
        assert_eq!(tree_order(b"a", true, b"a0", false), Less);
        assert_eq!(tree_order(b"a", false, b"a.txt", false), Less);
        assert_eq!(tree_order(b"a", false, b"a", true), Less);
        let mut c = TreeChecker::default();
        for (name, tree) in [("a.txt", false), ("a", true), ("a0", false), ("b", false)] {
            assert_eq!(c.entry(name.as_bytes(), tree), Ok(()), "{name}");
        }
        assert!(
            matches!(c.entry(b"b", false), Err(Error::Order(_))),
            "a duplicate"
        );
        let mut c = TreeChecker::default();
        c.entry(b"b", false).expect("first");
        assert!(
            matches!(c.entry(b"a", false), Err(Error::Order(_))),
            "out of order"
        );
        let mut c = TreeChecker::default();
        assert!(matches!(c.entry(b".GIT.", true), Err(Error::DotGit(_))));
    }
}
