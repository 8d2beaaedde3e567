//! The HS256 secret: `AUTH_COOKIE_SECRET`, or one generated and kept in the data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the generated secret inside `ORBIT_DATA_DIR`.
pub const SECRET_FILE: &str = "auth-secret";

/// Where the HS256 secret in effect comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `AUTH_COOKIE_SECRET`.
    Environment,
    /// Read from this file, generated earlier.
    File(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// The secret and where it came from.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The key bytes.
    pub bytes: Vec<u8>,
    /// Its origin, for the startup log.
    pub source: Source,
}

/// Errors of [`load_or_create()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret file could not be read or written.
    #[error("could not read or create the HS256 secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file exists but holds too little to be a secret.
    #[error(
        "the HS256 secret file {path} is empty or too short (remove it to generate a new one)"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
    },
}

/// Returns `AUTH_COOKIE_SECRET` when configured, else the secret kept in `data_dir`, generating
/// it (32 random bytes, hex, file mode 0600) on first use.
pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> Result<Secret, Error> {
    if let Some(s) = configured {
        return Ok(Secret {
            bytes: s.as_bytes().to_vec(),
            source: Source::Environment,
        });
    }
    let path = data_dir.join(SECRET_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let random: [u8; 32] = rand::random();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(hex.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(Secret {
                bytes: hex.into_bytes(),
                source: Source::Generated(path),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let text = text.trim();
            if text.len() < 32 {
                return Err(Error::TooShort { path });
            }
            Ok(Secret {
                bytes: text.as_bytes().to_vec(),
                source: Source::File(path),
            })
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_mode_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(None, tmp.path()).expect("generate");
        assert!(matches!(first.source, Source::Generated(_)));
        assert_eq!(first.bytes.len(), 64);
        let second = load_or_create(None, tmp.path()).expect("reuse");
        assert!(matches!(second.source, Source::File(_)));
        assert_eq!(first.bytes, second.bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path().join(SECRET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let env = load_or_create(Some("from-env"), tmp.path()).expect("env");
        assert_eq!(env.source, Source::Environment);
        assert_eq!(env.bytes, b"from-env");
    }
}
