//! A cache of generated packs for fan-out: when a CI matrix or a swarm of agents clones one
//! repository at the same time, the requests are identical and so is the pack. The first request
//! generates and tees the pack into a file; identical requests arriving meanwhile read along as it
//! is written (no second generation); later ones stream the file.
//!
//! The key is a hash of everything that decides the pack's bytes (see
//! [`crate::upload_pack`]): the repository, its whole ref state, the wants, the haves found in
//! common, the shallow request, the filter and the capabilities that change the bytes. A push
//! changes the ref state and so every key. Entries are checked before they are served (length
//! and CRC-32 from a sidecar written after the pack): a truncated or damaged file is deleted and
//! the pack generated again. The directory is bounded (`max_bytes`, oldest first) and entries
//! expire after `ttl`. Read-along works within one process; another process generates its own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use gix::ObjectId;

/// A cache key: the SHA-1 of what decides a pack's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(ObjectId);

impl Key {
    /// Hashes `parts` (each length-prefixed, so boundaries count).
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut h = gix::hash::hasher(gix::hash::Kind::Sha1);
        h.update(b"orbit-pack-cache-v1\0");
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Key(h
            .try_finalize()
            .unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1)))
    }

    fn hex(&self) -> String {
        self.0.to_string()
    }
}

/// Counters, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Packs generated and written into the cache.
    pub generated: AtomicU64,
    /// Answers streamed from a finished entry.
    pub hits: AtomicU64,
    /// Answers read along while another request generated the pack.
    pub followed: AtomicU64,
    /// Entries found damaged or truncated, deleted and not served.
    pub rejected: AtomicU64,
}

#[derive(Debug, Default)]
struct Progress {
    written: u64,
    /// `Some(Ok(objects))` once published, `Some(Err(()))` if the generation failed.
    done: Option<Result<usize, ()>>,
}

/// A pack being generated, that identical requests read along.
#[derive(Debug)]
pub struct InFlight {
    path: PathBuf,
    progress: Mutex<Progress>,
    changed: Condvar,
}

/// The pack cache of one process.
#[derive(Debug)]
pub struct PackCache {
    dir: PathBuf,
    max_bytes: u64,
    ttl: Duration,
    inflight: Mutex<HashMap<Key, Arc<InFlight>>>,
    seq: AtomicU64,
    /// What the cache did.
    pub stats: Stats,
}

/// What [`PackCache::get`] found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A finished, verified entry: its bytes and object count.
    Hit {
        /// The pack, positioned at its start.
        file: File,
        /// Objects in it.
        objects: usize,
    },
    /// Another request is generating it: read along with [`Follower`].
    Follow(Follower),
    /// Nobody has it: generate through this writer, then [`Generator::finish`].
    Generate(Generator<'a>),
}

/// Reads a pack while another request writes it.
#[derive(Debug)]
pub struct Follower {
    flight: Arc<InFlight>,
    file: File,
    pos: u64,
}

impl Follower {
    /// Copies the pack into `out` as it is written; answers its object count, or an error when
    /// the generation failed (what was copied so far is then incomplete).
    pub fn copy_to(mut self, out: &mut (impl Write + ?Sized)) -> io::Result<usize> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (available, done) = {
                let mut p = self
                    .flight
                    .progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                while p.written == self.pos && p.done.is_none() {
                    p = self
                        .flight
                        .changed
                        .wait(p)
                        .unwrap_or_else(|e| e.into_inner());
                }
                (p.written - self.pos, p.done)
            };
            if available == 0 {
                return match done {
                    Some(Ok(objects)) => Ok(objects),
                    _ => Err(io::Error::other("the pack this request waited for failed")),
                };
            }
            let mut left = available;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                self.file.read_exact(&mut buf[..n])?;
                out.write_all(&buf[..n])?;
                left -= n as u64;
                self.pos += n as u64;
            }
        }
    }
}

/// Tees a generated pack into the cache. Dropped without [`finish`](Self::finish) (the request
/// failed), it removes its file and fails the followers.
#[derive(Debug)]
pub struct Generator<'a> {
    cache: &'a PackCache,
    key: Key,
    flight: Arc<InFlight>,
    file: Option<File>,
    buf: Vec<u8>,
    crc: flate2::Crc,
    len: u64,
    /// Set when the pack outgrew the cache: it is still written for followers, never kept.
    too_big: bool,
}

impl Write for Generator<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.spill()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spill()
    }
}

impl Generator<'_> {
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            self.buf.clear();
            return Ok(());
        };
        file.write_all(&self.buf)?;
        self.crc.update(&self.buf);
        self.len += self.buf.len() as u64;
        self.too_big |= self.len > self.cache.max_bytes;
        self.buf.clear();
        let mut p = self
            .flight
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.written = self.len;
        self.flight.changed.notify_all();
        Ok(())
    }

    /// The pack is complete with `objects` objects: publish it for later requests.
    pub fn finish(mut self, objects: usize) -> io::Result<()> {
        self.spill()?;
        let file = self.file.take();
        let result = (|| -> io::Result<()> {
            let file = file.ok_or_else(|| io::Error::other("no cache file"))?;
            file.sync_data()?;
            drop(file);
            if !self.too_big {
                let (pack, meta) = self.cache.paths(&self.key);
                std::fs::rename(&self.flight.path, &pack)?;
                let tmp_meta = meta.with_extension("meta.tmp");
                std::fs::write(
                    &tmp_meta,
                    format!("{} {} {}\n", self.len, self.crc.sum(), objects),
                )?;
                std::fs::rename(&tmp_meta, &meta)?;
                self.cache.stats.generated.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })();
        {
            let mut p = self
                .flight
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            p.done = Some(Ok(objects));
            self.flight.changed.notify_all();
        }
        self.cache.forget(&self.key);
        if self.too_big {
            let _ = std::fs::remove_file(&self.flight.path);
        }
        self.cache.evict();
        result
    }
}

impl Drop for Generator<'_> {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = std::fs::remove_file(&self.flight.path);
            let mut p = self
                .flight
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            p.done = Some(Err(()));
            self.flight.changed.notify_all();
            drop(p);
            self.cache.forget(&self.key);
        }
    }
}

impl PackCache {
    /// A cache in `dir` (created), holding at most `max_bytes`, entries valid for `ttl`.
    pub fn new(dir: &Path, max_bytes: u64, ttl: Duration) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            ttl,
            inflight: Mutex::default(),
            seq: AtomicU64::new(0),
            stats: Stats::default(),
        })
    }

    fn paths(&self, key: &Key) -> (PathBuf, PathBuf) {
        let hex = key.hex();
        (
            self.dir.join(format!("{hex}.pack")),
            self.dir.join(format!("{hex}.meta")),
        )
    }

    fn forget(&self, key: &Key) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Finds `key`: a verified entry, a generation to follow, or the duty to generate.
    pub fn get(&self, key: Key) -> Lookup<'_> {
        if let Some(f) = self.follow(&key) {
            return f;
        }
        // Verified outside the lock: reading a large entry must not hold up other lookups.
        if let Some((file, objects)) = self.verified(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit { file, objects };
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = inflight.get(&key) {
            if let Some(file) = self.open_flight(&key, flight) {
                self.stats.followed.fetch_add(1, Ordering::Relaxed);
                return Lookup::Follow(Follower {
                    flight: flight.clone(),
                    file,
                    pos: 0,
                });
            }
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("tmp-{}-{}-{n}.pack", key.hex(), std::process::id()));
        let file = File::create(&path).ok();
        let flight = Arc::new(InFlight {
            path,
            progress: Mutex::default(),
            changed: Condvar::new(),
        });
        if file.is_some() {
            inflight.insert(key, flight.clone());
        }
        Lookup::Generate(Generator {
            cache: self,
            key,
            flight,
            file,
            buf: Vec::new(),
            crc: flate2::Crc::new(),
            len: 0,
            too_big: false,
        })
    }

    /// The file of a generation in flight: its temporary file, or, once the generator has
    /// published it (renamed, same bytes) but not yet left the in-flight map, the entry itself.
    fn open_flight(&self, key: &Key, flight: &InFlight) -> Option<File> {
        File::open(&flight.path)
            .or_else(|_| File::open(self.paths(key).0))
            .ok()
    }

    fn follow(&self, key: &Key) -> Option<Lookup<'_>> {
        let inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let flight = inflight.get(key)?;
        let file = self.open_flight(key, flight)?;
        self.stats.followed.fetch_add(1, Ordering::Relaxed);
        Some(Lookup::Follow(Follower {
            flight: flight.clone(),
            file,
            pos: 0,
        }))
    }

    /// The entry of `key` if it is complete, fresh and intact; a bad one is deleted.
    fn verified(&self, key: &Key) -> Option<(File, usize)> {
        let (pack, meta) = self.paths(key);
        let text = std::fs::read_to_string(&meta).ok()?;
        let reject = || {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&meta);
            let _ = std::fs::remove_file(&pack);
            None
        };
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(len)), Some(Ok(crc)), Some(Ok(objects))) =
            (fields.next(), fields.next(), fields.next())
        else {
            return reject();
        };
        let mut file = File::open(&pack).ok()?;
        let fresh = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < self.ttl);
        if !fresh {
            let _ = std::fs::remove_file(&meta);
            let _ = std::fs::remove_file(&pack);
            return None;
        }
        if file.metadata().map(|m| m.len()).ok() != Some(len) {
            return reject();
        }
        let mut sum = flate2::Crc::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sum.update(&buf[..n]),
                Err(_) => return reject(),
            }
        }
        if u64::from(sum.sum()) != crc || file.rewind().is_err() {
            return reject();
        }
        Some((file, usize::try_from(objects).unwrap_or(0)))
    }

    /// Deletes expired entries, temporary files older than an hour (a killed process's), and the
    /// oldest entries until the cache fits `max_bytes`.
    pub fn evict(&self) {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let age = modified.elapsed().unwrap_or_default();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                if age > Duration::from_secs(3600) {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            if !name.ends_with(".pack") {
                continue;
            }
            if age >= self.ttl {
                let _ = std::fs::remove_file(path.with_extension("meta"));
                let _ = std::fs::remove_file(&path);
                continue;
            }
            total += meta.len();
            entries.push((modified, meta.len(), path));
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            let _ = std::fs::remove_file(path.with_extension("meta"));
            let _ = std::fs::remove_file(&path);
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(cache: &PackCache, key: Key, data: &[u8]) {
        match cache.get(key) {
            Lookup::Generate(mut g) => {
                g.write_all(data).expect("write");
                g.finish(3).expect("finish");
            }
            other => panic!("expected to generate, got {other:?}"),
        }
    }

    #[test]
    fn generate_then_hit_and_damaged_entries_are_not_served() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = PackCache::new(dir.path(), 1 << 20, Duration::from_secs(60)).expect("cache");
        let key = Key::of(&[b"repo", b"refs", b"wants"]);
        assert_ne!(key, Key::of(&[b"repo", b"refs", b"wantsx"]));
        assert_ne!(Key::of(&[b"ab", b"c"]), Key::of(&[b"a", b"bc"]));
        generate(&cache, key, b"PACK bytes of a pack");
        match cache.get(key) {
            Lookup::Hit { mut file, objects } => {
                let mut s = Vec::new();
                file.read_to_end(&mut s).expect("read");
                assert_eq!(s, b"PACK bytes of a pack");
                assert_eq!(objects, 3);
            }
            other => panic!("{other:?}"),
        }
        // Truncated: not served, regenerated.
        let (pack, _) = cache.paths(&key);
        std::fs::write(&pack, b"PACK bytes").expect("truncate");
        assert!(matches!(cache.get(key), Lookup::Generate(_)));
        assert_eq!(cache.stats.rejected.load(Ordering::Relaxed), 1);
        // Same length, a flipped byte: caught by the CRC.
        generate(&cache, key, b"PACK bytes of a pack");
        std::fs::write(&pack, b"PACK bytes of a pacK").expect("flip");
        assert!(matches!(cache.get(key), Lookup::Generate(_)));
        assert_eq!(cache.stats.rejected.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn identical_requests_read_along_and_a_failed_generation_fails_them() {
        let dir = tempfile::tempdir().expect("dir");
        let cache =
            Arc::new(PackCache::new(dir.path(), 1 << 30, Duration::from_secs(60)).expect("cache"));
        let key = Key::of(&[b"k"]);
        let Lookup::Generate(mut g) = cache.get(key) else {
            panic!("generate")
        };
        let c2 = cache.clone();
        let follower = std::thread::spawn(move || {
            let Lookup::Follow(f) = c2.get(key) else {
                panic!("follow")
            };
            let mut out = Vec::new();
            let n = f.copy_to(&mut out).expect("copy");
            (out, n)
        });
        let chunk = vec![7u8; 100_000];
        for _ in 0..5 {
            g.write_all(&chunk).expect("write");
            std::thread::sleep(Duration::from_millis(5));
        }
        g.finish(42).expect("finish");
        let (out, n) = follower.join().expect("join");
        assert_eq!(out.len(), 500_000);
        assert_eq!(n, 42);
        assert_eq!(cache.stats.generated.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats.followed.load(Ordering::Relaxed), 1);

        let key = Key::of(&[b"other"]);
        let Lookup::Generate(mut g) = cache.get(key) else {
            panic!("generate")
        };
        g.write_all(&chunk).expect("write");
        g.flush().expect("flush");
        let Lookup::Follow(f) = cache.get(key) else {
            panic!("follow")
        };
        drop(g); // the generating request failed
        assert!(f.copy_to(&mut Vec::new()).is_err());
        assert!(
            matches!(cache.get(key), Lookup::Generate(_)),
            "nothing was kept"
        );
    }

    #[test]
    fn the_cache_stays_under_its_size() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = PackCache::new(dir.path(), 250, Duration::from_secs(60)).expect("cache");
        for i in 0..5u8 {
            generate(&cache, Key::of(&[&[i]]), &[i; 100]);
            std::thread::sleep(Duration::from_millis(10));
        }
        let packs = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count();
        assert_eq!(packs, 2, "the newest two entries fit");
        assert!(matches!(cache.get(Key::of(&[&[4u8]])), Lookup::Hit { .. }));
    }
}
