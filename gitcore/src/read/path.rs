//! Paths inside a tree, as callers give them: relative, `/`-separated, no `.` or `..`.

use super::Error;

/// Checks a path inside a tree and returns it without a trailing `/`.
///
/// The empty path is the root. Refused: absolute paths, `.` and `..` components, empty
/// components (`a//b`), and NUL bytes. One trailing `/` is allowed (`src/`).
pub fn validate(path: &str) -> Result<&str, Error> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.starts_with('/') {
        return Err(invalid("absolute paths are not allowed"));
    }
    if path.contains('\0') {
        return Err(invalid("NUL bytes are not allowed"));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return if path.is_empty() {
            Ok(trimmed)
        } else {
            Err(invalid("empty path component"))
        };
    }
    for component in trimmed.split('/') {
        match component {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("'.' and '..' are not allowed")),
            _ => {}
        }
    }
    Ok(trimmed)
}

/// The components of a validated path (none for the root).
pub(crate) fn components(path: &str) -> Vec<&[u8]> {
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').map(str::as_bytes).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_relative_paths() {
        assert_eq!(validate("").expect("root"), "");
        assert_eq!(validate("a").expect("a"), "a");
        assert_eq!(validate("a/b.txt").expect("a/b"), "a/b.txt");
        assert_eq!(validate("src/").expect("dir"), "src");
        assert_eq!(validate("..a/b..").expect("dots in names"), "..a/b..");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "/etc/passwd",
            "..",
            "a/../b",
            "./a",
            "a/.",
            "a//b",
            "/",
            "//",
            "a\0b",
        ] {
            assert!(
                matches!(validate(bad), Err(Error::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }
}
