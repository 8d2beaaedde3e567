//! Abbreviated ids as git prints them (`core.abbrev=auto`): at least 7 hex digits, more in
//! large repositories, and longer while another object shares the prefix. The inputs (the
//! packed-object count, the pack indices) are kept per process and revalidated by a listing or
//! a stat of `objects/pack`; gix's own prefix lookup reloads every index on each call.

use std::collections::HashSet;

use gix::ObjectId;

/// The shortest unique abbreviation of `id` as `git` prints it by default: at least 7 hex digits
/// (more in large repositories, from the packed object count like git's `core.abbrev=auto`), and
/// longer while another object shares the prefix. Works for ids that do not exist (the null id).
pub fn abbreviate(repo: &gix::Repository, id: &ObjectId) -> String {
    Abbreviator::new(repo).abbreviate(repo, id)
}

/// [`abbreviate`] for many ids of one repository (a diff's `index` lines): the object count, the
/// pack indices and each loose directory are read once.
pub struct Abbreviator {
    min_len: usize,
    objects: std::path::PathBuf,
    indices: Option<Vec<PackIndex>>,
    loose: std::collections::HashMap<u8, Vec<ObjectId>>,
}

impl Abbreviator {
    /// Reads the repository's object count and pack indices.
    pub fn new(repo: &gix::Repository) -> Self {
        let objects = repo.objects.store_ref().path().to_owned();
        Abbreviator {
            min_len: auto_abbrev_len(packed_object_count(repo)),
            indices: pack_indices(&objects.join("pack")),
            objects,
            loose: Default::default(),
        }
    }

    /// The shortest unique abbreviation of `id`, as [`abbreviate`].
    pub fn abbreviate(&mut self, repo: &gix::Repository, id: &ObjectId) -> String {
        let hex = id.to_hex().to_string();
        let mut len = self.min_len;
        let Some(indices) = &self.indices else {
            return abbreviate_with_gix(repo, id, len, &hex);
        };
        // Loose objects sharing the first byte: one directory listing.
        let objects = &self.objects;
        let loose = self.loose.entry(id.first_byte()).or_insert_with(|| {
            std::fs::read_dir(objects.join(&hex[..2]))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let rest = name.to_str()?;
                    ObjectId::from_hex(format!("{}{rest}", &hex[..2]).as_bytes()).ok()
                })
                .collect()
        });
        while len < hex.len() {
            let Ok(prefix) = gix::hash::Prefix::new(id, len) else {
                break;
            };
            let shared_in_pack = indices.iter().any(|idx| {
                let mut range = 0..0;
                idx.lookup_prefix(prefix, Some(&mut range));
                range.any(|i| idx.oid_at_index(i) != id.as_ref())
            });
            let shared_loose = loose
                .iter()
                .any(|other| other != id && prefix.cmp_oid(other).is_eq());
            if !shared_in_pack && !shared_loose {
                break;
            }
            len += 1;
        }
        hex[..len.min(hex.len())].to_owned()
    }
}

/// [`abbreviate`] through gix's prefix lookup (which loads every index and resolves alternates
/// on each call).
fn abbreviate_with_gix(repo: &gix::Repository, id: &ObjectId, mut len: usize, hex: &str) -> String {
    while len < hex.len() {
        let Ok(prefix) = gix::hash::Prefix::new(id, len) else {
            break;
        };
        let mut set = HashSet::new();
        if repo.objects.lookup_prefix(prefix, Some(&mut set)).is_err() {
            break;
        }
        set.remove(id);
        if set.is_empty() {
            break;
        }
        len += 1;
    }
    hex[..len.min(hex.len())].to_owned()
}

type PackIndex = std::sync::Arc<gix_pack::index::File>;

/// The indices of the packs in `pack_dir`, opened once per process (a pack index never changes
/// under its name); the directory is listed on each call and a changed listing reopens only
/// what is new. `None` when the directory cannot be read or an index cannot be opened.
fn pack_indices(pack_dir: &std::path::Path) -> Option<Vec<PackIndex>> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    type Listing = Vec<(PathBuf, PackIndex)>;
    static OPEN: std::sync::OnceLock<std::sync::Mutex<HashMap<PathBuf, Listing>>> =
        std::sync::OnceLock::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(pack_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    names.sort();
    let open = OPEN.get_or_init(Default::default);
    let previous = open.lock().ok()?.get(pack_dir).cloned().unwrap_or_default();
    if previous.len() == names.len() && previous.iter().zip(&names).all(|((p, _), n)| p == n) {
        return Some(previous.into_iter().map(|(_, idx)| idx).collect());
    }
    let mut listing = Vec::with_capacity(names.len());
    for name in names {
        let idx = match previous.iter().find(|(p, _)| *p == name) {
            Some((_, idx)) => idx.clone(),
            None => {
                std::sync::Arc::new(gix_pack::index::File::at(&name, gix::hash::Kind::Sha1).ok()?)
            }
        };
        listing.push((name, idx));
    }
    let out = listing.iter().map(|(_, idx)| idx.clone()).collect();
    if let Ok(mut cache) = open.lock() {
        if cache.len() >= 1024 && !cache.contains_key(pack_dir) {
            cache.clear();
        }
        cache.insert(pack_dir.to_owned(), listing);
    }
    Some(out)
}

/// The number of packed objects, kept per process while `objects/pack` is unchanged (a pack is
/// added or removed by a rename or unlink there, which changes the directory's times): counting
/// makes gix load every index of the repository.
fn packed_object_count(repo: &gix::Repository) -> u64 {
    use std::os::unix::fs::MetadataExt;
    type Stamp = (u64, i64, i64, i64, i64);
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, (Stamp, u64)>>,
    > = std::sync::OnceLock::new();
    let dir = repo.objects.store_ref().path().join("pack");
    let stamp = |dir: &std::path::Path| -> Option<Stamp> {
        let m = std::fs::metadata(dir).ok()?;
        Some((
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ))
    };
    let Some(before) = stamp(&dir) else {
        return repo.objects.packed_object_count().unwrap_or(0);
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some((s, count)) = cache.lock().ok().and_then(|c| c.get(&dir).copied()) {
        if s == before {
            return count;
        }
    }
    let count = repo.objects.packed_object_count().unwrap_or(0);
    if stamp(&dir) == Some(before) {
        if let Ok(mut c) = cache.lock() {
            if c.len() >= 1024 && !c.contains_key(&dir) {
                c.clear();
            }
            c.insert(dir, (before, count));
        }
    }
    count
}

/// git's `core.abbrev=auto` length for `count` packed objects.
fn auto_abbrev_len(count: u64) -> usize {
    let msb = if count == 0 {
        0
    } else {
        63 - count.leading_zeros() as usize
    };
    let bits = msb + 1;
    bits.div_ceil(2).max(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_abbrev_matches_git() {
        assert_eq!(auto_abbrev_len(0), 7);
        assert_eq!(auto_abbrev_len(10_000), 7);
        assert_eq!(auto_abbrev_len(1 << 16), 9);
        assert_eq!(auto_abbrev_len(190_000), 9);
    }
}
