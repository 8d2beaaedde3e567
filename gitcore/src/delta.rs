//! A git delta encoder, for objects that go out whole because no stored delta fits: when a
//! client that asked for a thin pack provably has an older version at the same path, the new
//! version is sent as a delta against it (what `git pack-objects` achieves with its delta search).
//!
//! Format (gitformat-pack "Deltified representation"): source size and target size as
//! little-endian base-128 varints, then instructions: copy (`1xxxxxxx` + offset/size bytes) or
//! insert (`0xxxxxxx`, 1..=127 literal bytes).

use std::collections::HashMap;

/// Bytes per indexed block of the source.
const BLOCK: usize = 16;
/// Source offsets remembered per block.
const CANDIDATES: usize = 8;
/// Largest copy one instruction can express.
const MAX_COPY: usize = 0x00ff_ffff;

fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn flush_insert(out: &mut Vec<u8>, pending: &[u8]) {
    for chunk in pending.chunks(127) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

fn copy(out: &mut Vec<u8>, offset: usize, size: usize) {
    let mut cmd = 0x80u8;
    let mut args = Vec::with_capacity(7);
    for i in 0..4 {
        let b = ((offset >> (8 * i)) & 0xff) as u8;
        if b != 0 {
            cmd |= 1 << i;
            args.push(b);
        }
    }
    for i in 0..3 {
        let b = ((size >> (8 * i)) & 0xff) as u8;
        if b != 0 {
            cmd |= 1 << (4 + i);
            args.push(b);
        }
    }
    out.push(cmd);
    out.extend_from_slice(&args);
}

/// Encodes `target` as a delta against `source`. Returns `None` when the delta would not be
/// smaller than `max_size` bytes (then sending the object whole is better).
pub fn encode(source: &[u8], target: &[u8], max_size: usize) -> Option<Vec<u8>> {
    if source.len() > u32::MAX as usize || target.is_empty() {
        return None;
    }
    // Index the source at every BLOCK-aligned offset, keeping a few candidates per block
    // (repetitive text shares blocks between different places).
    let mut index: HashMap<&[u8], Vec<usize>> = HashMap::with_capacity(source.len() / BLOCK + 1);
    let mut o = 0;
    while o + BLOCK <= source.len() {
        let c = index.entry(&source[o..o + BLOCK]).or_default();
        if c.len() < CANDIDATES {
            c.push(o);
        }
        o += BLOCK;
    }
    let mut out = Vec::with_capacity(target.len() / 4 + 16);
    varint(&mut out, source.len());
    varint(&mut out, target.len());
    let mut pending: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < target.len() {
        let hit = (i + BLOCK <= target.len())
            .then(|| index.get(&target[i..i + BLOCK]))
            .flatten()
            .and_then(|cands| {
                // The candidate whose match runs longest.
                cands.iter().copied().max_by_key(|&src| {
                    let mut n = BLOCK;
                    while i + n < target.len()
                        && src + n < source.len()
                        && source[src + n] == target[i + n]
                    {
                        n += 1;
                    }
                    n
                })
            });
        match hit {
            Some(mut src) => {
                let mut start = i;
                // Extend backwards over bytes still pending as literals.
                while start > 0
                    && src > 0
                    && !pending.is_empty()
                    && source[src - 1] == target[start - 1]
                {
                    start -= 1;
                    src -= 1;
                    pending.pop();
                }
                let mut len = i - start + BLOCK;
                while start + len < target.len()
                    && src + len < source.len()
                    && source[src + len] == target[start + len]
                {
                    len += 1;
                }
                flush_insert(&mut out, &pending);
                pending.clear();
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(MAX_COPY);
                    copy(&mut out, src + done, n);
                    done += n;
                }
                i = start + len;
            }
            None => {
                pending.push(target[i]);
                i += 1;
            }
        }
        if out.len() + pending.len() >= max_size {
            return None;
        }
    }
    flush_insert(&mut out, &pending);
    (out.len() < max_size).then_some(out)
}

/// Applies a delta (for tests and checks).
pub fn apply(source: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    let read_varint = |pos: &mut usize| -> Option<usize> {
        let mut n = 0usize;
        let mut shift = 0;
        loop {
            let b = *delta.get(*pos)?;
            *pos += 1;
            if shift > 56 {
                return None;
            }
            n |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
    };
    let src_len = read_varint(&mut pos)?;
    let tgt_len = read_varint(&mut pos)?;
    if src_len != source.len() {
        return None;
    }
    // The header's size is a claim, checked at the end: it only bounds the allocation.
    let mut out = Vec::with_capacity(tgt_len.min(source.len() + delta.len()));
    while pos < delta.len() {
        let cmd = delta[pos];
        pos += 1;
        if cmd & 0x80 != 0 {
            let mut offset = 0usize;
            let mut size = 0usize;
            for i in 0..4 {
                if cmd & (1 << i) != 0 {
                    offset |= (*delta.get(pos)? as usize) << (8 * i);
                    pos += 1;
                }
            }
            for i in 0..3 {
                if cmd & (1 << (4 + i)) != 0 {
                    size |= (*delta.get(pos)? as usize) << (8 * i);
                    pos += 1;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            out.extend_from_slice(source.get(offset..offset.checked_add(size)?)?);
        } else if cmd != 0 {
            let n = cmd as usize;
            out.extend_from_slice(delta.get(pos..pos.checked_add(n)?)?);
            pos += n;
        } else {
            return None;
        }
        if out.len() > tgt_len {
            return None;
        }
    }
    (out.len() == tgt_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (delta): a header claiming a 1.7 TB target allocated it up front, and a
    /// varint longer than 64 bits overflowed its shift.
    #[test]
    fn hostile_headers_are_refused_without_allocating() {
        let mut delta = vec![0x00];
        delta.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        delta.extend_from_slice(&[0x01, b'x']);
        assert_eq!(apply(&[], &delta), None);
        let long = [0xffu8; 12];
        assert_eq!(apply(&[], &long), None);
        assert_eq!(apply(b"abc", &[0x03, 0x01, 0x90, 0x00]), None);
    }

    #[test]
    fn round_trips_edits() {
        let source: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("line {i} of the file\n").into_bytes())
            .collect();
        let mut target = source.clone();
        target.splice(1000..1010, b"CHANGED".iter().copied());
        target.extend_from_slice(b"appended tail\n");
        target.splice(0..0, b"new head\n".iter().copied());
        let d = encode(&source, &target, target.len()).expect("delta");
        assert!(d.len() < 200, "delta of a small edit is small: {}", d.len());
        assert_eq!(apply(&source, &d).expect("apply"), target);
    }

    #[test]
    fn unrelated_data_is_not_worth_a_delta() {
        let a: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 241) as u8).collect();
        assert!(encode(&a, &b, b.len() / 2).is_none());
        assert_eq!(
            apply(&a, &encode(&a, &a, a.len()).expect("identical")).expect("apply"),
            a
        );
    }
}
