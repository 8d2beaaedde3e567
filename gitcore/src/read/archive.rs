//! `git archive` of a commit as tar, tar.gz or zip, on gix-archive: every file of the commit's
//! tree under a directory prefix, with the commit's time as the files' time. Tar formats stream
//! into any writer (constant memory); zip needs a seekable one (its index goes last).

use std::io::{Seek, Write};

use gix::ObjectId;

use super::Error;

/// An archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.tar`.
    Tar,
    /// `.tar.gz`.
    TarGz,
    /// `.zip`.
    Zip,
}

impl Format {
    /// The format named by a file suffix (`tar`, `tar.gz`, `tgz`, `zip`).
    pub fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "tar" => Some(Format::Tar),
            "tar.gz" | "tgz" => Some(Format::TarGz),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }
}

fn options(
    repo: &gix::Repository,
    commit: ObjectId,
    prefix: &str,
    format: Format,
) -> Result<(gix::worktree::stream::Stream, gix_archive::Options), Error> {
    let c = super::commit::read(repo, commit)?;
    let (stream, _index) = repo
        .worktree_stream(c.tree)
        .map_err(|e| Error::object(c.tree, e))?;
    let format = match format {
        Format::Tar => gix_archive::Format::Tar,
        Format::TarGz => gix_archive::Format::TarGz {
            compression_level: None,
        },
        Format::Zip => gix_archive::Format::Zip {
            compression_level: None,
        },
    };
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    Ok((
        stream,
        gix_archive::Options {
            format,
            tree_prefix: (!prefix.is_empty()).then(|| prefix.into()),
            modification_time: c.committer.seconds,
        },
    ))
}

/// Writes the tar or tar.gz archive of `commit` to `out`.
pub fn write_tar(
    repo: &gix::Repository,
    commit: ObjectId,
    prefix: &str,
    gzip: bool,
    out: impl Write,
) -> Result<(), Error> {
    let format = if gzip { Format::TarGz } else { Format::Tar };
    let (mut stream, opts) = options(repo, commit, prefix, format)?;
    gix_archive::write_stream(&mut stream, |s| s.next_entry(), out, opts)
        .map_err(|e| Error::object(commit, e))
}

/// Writes the zip archive of `commit` to `out`.
pub fn write_zip(
    repo: &gix::Repository,
    commit: ObjectId,
    prefix: &str,
    out: impl Write + Seek,
) -> Result<(), Error> {
    let (mut stream, opts) = options(repo, commit, prefix, Format::Zip)?;
    gix_archive::write_stream_seek(&mut stream, |s| s.next_entry(), out, opts)
        .map_err(|e| Error::object(commit, e))
}
