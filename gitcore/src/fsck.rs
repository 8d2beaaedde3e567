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
    // HFS+ ignores some zero-width code points; drop them before comparing.
    let cleaned: Vec<u8> = {
        let s = name.to_str_lossy();
        s.chars()
            .filter(|c| !matches!(*c, '\u{200c}' | '\u{200d}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'))
            .collect::<String>()
            .into_bytes()
    };
    let lower = cleaned.to_ascii_lowercase();
    // NTFS: trailing dots and spaces are ignored, `git~1` is the short name.
    let trimmed = {
        let mut t = lower.as_slice();
        while let Some(rest) = t.strip_suffix(b".").or_else(|| t.strip_suffix(b" ")) {
            t = rest;
        }
        t
    };
    trimmed == b".git" || trimmed == b"git~1" || trimmed.starts_with(b".git::$index_allocation")
}

/// Checks a tree's entries by git's error-level fsck rules.
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

pub fn check_tree(tree: &TreeRef<'_>) -> Result<(), Error> {
    let mut previous: Option<(Vec<u8>, bool)> = None;
    for e in &tree.entries {
        let name: &[u8] = e.filename.as_ref();
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
        // git sorts trees as if directory names ended in '/'.
        let is_tree = e.mode.is_tree();
        if let Some((prev, prev_tree)) = &previous {
            let key = |n: &[u8], t: bool| {
                let mut k = n.to_vec();
                if t {
                    k.push(b'/');
                }
                k
            };
            if key(prev, *prev_tree) >= key(name, is_tree) || prev.as_slice() == name {
                return Err(Error::Order(shown()));
            }
        }
        previous = Some((name.to_vec(), is_tree));
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
        for n in [".gitignore", "git", ".github", "x.git"] {
            assert!(!is_dot_git(n.as_bytes()), "{n:?}");
        }
    }
}
