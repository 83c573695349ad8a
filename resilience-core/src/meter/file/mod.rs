//! The meter ring's file: a header page, then the slots, mapped shared so that a process killed
//! with `kill -9` leaves every published event in the page cache, and on disk after writeback.
//!
//! # Format (native byte order, this machine only)
//!
//! ```text
//! 0      magic "RSLMETR1", version, header length, capacity, slot size, value offset
//! 32     layout fingerprint: sizes and field offsets of `UsageEvent`, byte-order mark
//! 80     epoch (u64): names this ring's events for ever, across restarts
//! 88     runs: (first sequence, Unix time of the clock's zero) per process that used the file
//! 4000   layout fingerprint, continued: offsets of the fields added in layout 2
//! 4096   capacity × slot: stamp (u64), `UsageEvent` (`repr(C)`)
//! ```
//!
//! # Recovery
//!
//! A slot whose stamp says "published for position p" holds an event nobody released: not yet
//! drained, or drained and not yet delivered. Opening the file collects them by sequence
//! (`p` counted in events), from the oldest `H` to the newest, and continues the sequence at
//! `T`, past every position ever claimed. Positions in `[H, T)` without a valid event (a
//! producer killed between claiming and publishing, a released slot, a corrupt value) become
//! *voids*: occupied, skipped when drained, never delivered. The new file is written whole
//! beside the old one and renamed over it, so a crash while opening leaves one of the two,
//! never a mix. Sequences do not depend on the capacity, so the capacity may change between
//! runs as long as it holds what is recovered.
//!
//! Values are read back field by field from bytes, validated, and rebuilt with the checked
//! constructors, so a damaged or foreign file yields errors or voids, never an invalid value.
//! A file an earlier build wrote in another event layout is read in that layout and rewritten
//! in this one ([`layout`]).
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

mod layout;

use self::layout::{Layout, put, u32_at, u64_at};
use super::MeterError;
use super::event::UsageEvent;
use super::lock::{LockError, LockFile};
use crate::ring::{Ring, Slot, count, one_lap, position};

const MAGIC: [u8; 8] = *b"RSLMETR1";
const VERSION: u32 = 1;
/// Bytes before the first slot (one page, so the slots are page-aligned).
pub(crate) const HEADER_LEN: usize = 4096;
/// Runs remembered for timestamps; past this the oldest is dropped (its events then take the
/// next run's clock, which can only make them look later).
const MAX_RUNS: usize = 200;
const RUNS_AT: usize = 96;
/// The fingerprint's words for fields added in layout 2 (zero in a layout-1 file).
const DETAILS_AT: usize = 4000;

const _: () = assert!(RUNS_AT + MAX_RUNS * 16 <= DETAILS_AT);
const _: () = assert!(DETAILS_AT + 16 <= HEADER_LEN);
const _: () = assert!(HEADER_LEN.is_multiple_of(align_of::<Slot<UsageEvent>>()));
const _: () = assert!(
    Layout::CURRENT
        .slot
        .is_multiple_of(align_of::<Slot<UsageEvent>>())
);

/// A process's use of the file: events from `first_seq` on carry times on a clock whose zero
/// was `unix_base` nanoseconds after the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) first_seq: u64,
    pub(crate) unix_base: u64,
}

/// A ring file opened, recovered and mapped.
pub(crate) struct Opened {
    pub(crate) ring: Ring<UsageEvent>,
    pub(crate) epoch: u64,
    /// Oldest recovered sequence (`H`); equals `tail_seq` when nothing was recovered.
    pub(crate) head_seq: u64,
    /// First sequence of this run (`T`).
    pub(crate) tail_seq: u64,
    /// Sequences in `[H, T)` holding no event, ascending.
    pub(crate) voids: Box<[u64]>,
    pub(crate) runs: Box<[Run]>,
    pub(crate) lock: LockFile,
}

struct Header {
    capacity: usize,
    epoch: u64,
    runs: Vec<Run>,
}

fn file_error(path: &Path, reason: impl core::fmt::Display) -> MeterError {
    MeterError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn encode_header(header: &Header, out: &mut [u8]) {
    put(out, 0, &MAGIC);
    put(out, 8, &VERSION.to_ne_bytes());
    put(out, 12, &(HEADER_LEN as u32).to_ne_bytes());
    put(out, 16, &(header.capacity as u64).to_ne_bytes());
    let layout = Layout::CURRENT;
    put(out, 24, &(layout.slot as u32).to_ne_bytes());
    put(out, 28, &(layout.value as u32).to_ne_bytes());
    let (base, details) = layout.fingerprint();
    for (i, v) in base.iter().enumerate() {
        put(out, 32 + 4 * i, &v.to_ne_bytes());
    }
    for (i, v) in details.iter().enumerate() {
        put(out, DETAILS_AT + 4 * i, &v.to_ne_bytes());
    }
    put(out, 80, &header.epoch.to_ne_bytes());
    put(out, 88, &(header.runs.len() as u32).to_ne_bytes());
    for (i, run) in header.runs.iter().enumerate() {
        put(out, RUNS_AT + 16 * i, &run.first_seq.to_ne_bytes());
        put(out, RUNS_AT + 16 * i + 8, &run.unix_base.to_ne_bytes());
    }
}

/// The header, and the layout its slots were written in.
fn decode_header(bytes: &[u8]) -> Result<(Header, Layout), String> {
    if bytes.len() < HEADER_LEN || bytes[..8] != MAGIC {
        return Err("not a meter ring file (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION || u32_at(bytes, 12) as usize != HEADER_LEN {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let base: Vec<u32> = (0..12).map(|i| u32_at(bytes, 32 + 4 * i)).collect();
    let details: Vec<u32> = (0..4).map(|i| u32_at(bytes, DETAILS_AT + 4 * i)).collect();
    let Some(layout) = Layout::KNOWN.into_iter().find(|layout| {
        let (b, d) = layout.fingerprint();
        u32_at(bytes, 24) as usize == layout.slot
            && u32_at(bytes, 28) as usize == layout.value
            && base == b
            && details == d
    }) else {
        return Err(format!(
            "written by a build with an event layout this one does not know ({base:?} {details:?}, \
             this build writes {:?}); deliver it with that build or move it away",
            Layout::CURRENT.fingerprint()
        ));
    };
    let capacity = u64_at(bytes, 16);
    if capacity == 0 || capacity > 1 << 24 {
        return Err(format!("capacity {capacity} out of range"));
    }
    let runs_len = u32_at(bytes, 88) as usize;
    if runs_len > MAX_RUNS {
        return Err(format!("{runs_len} runs recorded, at most {MAX_RUNS}"));
    }
    let runs = (0..runs_len)
        .map(|i| Run {
            first_seq: u64_at(bytes, RUNS_AT + 16 * i),
            unix_base: u64_at(bytes, RUNS_AT + 16 * i + 8),
        })
        .collect();
    Ok((
        Header {
            capacity: capacity as usize,
            epoch: u64_at(bytes, 80),
            runs,
        },
        layout,
    ))
}

/// A random 64-bit epoch: std's hash keys come from the OS's randomness once per thread, and
/// each `RandomState` after the first gets fresh ones; the pid and a counter separate rings
/// made close together.
fn random_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static MADE: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(MADE.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A fresh epoch for a ring that lives in memory only.
pub(crate) fn memory_epoch() -> u64 {
    random_epoch()
}

/// What the old file still holds: published events by sequence, and the first sequence that
/// was never claimed.
struct Recovered {
    header: Header,
    published: Vec<(u64, Option<UsageEvent>)>,
    next_seq: u64,
}

fn recover(path: &Path, bytes: &[u8]) -> Result<Recovered, MeterError> {
    let (header, layout) = decode_header(bytes).map_err(|reason| file_error(path, reason))?;
    let capacity = header.capacity;
    let expected = HEADER_LEN + capacity * layout.slot;
    if bytes.len() != expected {
        return Err(file_error(
            path,
            format_args!(
                "{} bytes, expected {expected} for {capacity} slots",
                bytes.len()
            ),
        ));
    }
    let lap = one_lap(capacity);
    let mut published = Vec::new();
    let mut next_seq = 0u64;
    for i in 0..capacity {
        let at = HEADER_LEN + i * layout.slot;
        let stamp = u64_at(bytes, at);
        let index = (stamp & (lap - 1)) as usize;
        if index == i + 1 {
            let seq = count(stamp - 1, capacity);
            let value = at + layout.value..at + layout.value + layout.event;
            published.push((seq, layout.decode(&bytes[value])));
            next_seq = next_seq.max(seq + 1);
        } else if index == i {
            // Free for position `stamp`: the position one lap before it was claimed (if any).
            next_seq = next_seq.max((count(stamp, capacity) + 1).saturating_sub(capacity as u64));
        }
        // Any other stamp is damage: the slot says nothing, and is not trusted.
    }
    published.sort_by_key(|(seq, _)| *seq);
    published.dedup_by_key(|(seq, _)| *seq);
    Ok(Recovered {
        header,
        published,
        next_seq,
    })
}

/// Opens (creating or recovering) the ring file at `path` with `capacity` slots; this run's
/// clock reads zero at `unix_base`.
pub(crate) fn open(path: &Path, capacity: usize, unix_base: u64) -> Result<Opened, MeterError> {
    let lock = LockFile::acquire(lock_path(path)).map_err(|e| match e {
        LockError::Held { pid, .. } => MeterError::Locked {
            path: path.to_owned(),
            pid,
        },
        LockError::Io { reason, .. } => file_error(path, reason),
    })?;
    let old = match File::open(path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| file_error(path, e))?;
            Some(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(file_error(path, e)),
    };
    let (epoch, mut runs, events, head_seq, tail_seq) = match old.filter(|b| !b.is_empty()) {
        Some(bytes) => {
            let recovered = recover(path, &bytes)?;
            let head = recovered
                .published
                .first()
                .map_or(recovered.next_seq, |(seq, _)| *seq);
            let tail = recovered.next_seq;
            if tail - head > capacity as u64 {
                return Err(file_error(
                    path,
                    format_args!(
                        "holds {} undelivered positions, more than the capacity {capacity}; \
                         open it with a capacity of at least that",
                        tail - head
                    ),
                ));
            }
            (
                recovered.header.epoch,
                recovered.header.runs,
                recovered.published,
                head,
                tail,
            )
        }
        None => (random_epoch(), Vec::new(), Vec::new(), 0, 0),
    };
    // Keep the runs that recovered events may still need, then add this one.
    let needed = runs
        .iter()
        .rposition(|r| r.first_seq <= head_seq)
        .unwrap_or(0);
    runs.drain(..needed);
    runs.push(Run {
        first_seq: tail_seq,
        unix_base,
    });
    if runs.len() > MAX_RUNS {
        runs.drain(..runs.len() - MAX_RUNS);
    }

    let layout = Layout::CURRENT;
    let mut bytes = vec![0u8; HEADER_LEN + capacity * layout.slot];
    encode_header(
        &Header {
            capacity,
            epoch,
            runs: runs.clone(),
        },
        &mut bytes,
    );
    let lap = one_lap(capacity);
    let mut events = events.into_iter().peekable();
    let mut voids = Vec::new();
    for seq in head_seq..head_seq + capacity as u64 {
        let pos = position(seq, capacity);
        let at = HEADER_LEN + (pos & (lap - 1)) as usize * layout.slot;
        let value = at + layout.value..at + layout.value + layout.event;
        if seq < tail_seq {
            put(&mut bytes, at, &(pos + 1).to_ne_bytes());
            while events.next_if(|(s, _)| *s < seq).is_some() {}
            match events.next_if(|(s, _)| *s == seq) {
                Some((_, Some(event))) => layout.encode(&event, &mut bytes[value]),
                _ => {
                    voids.push(seq);
                    layout.mark_void(&mut bytes[value]);
                }
            }
        } else {
            put(&mut bytes, at, &pos.to_ne_bytes());
        }
    }

    let tmp = path.with_extension("ring-new");
    let write = || -> std::io::Result<File> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is (best effort where unsupported).
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        OpenOptions::new().read(true).write(true).open(path)
    };
    let file = write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_error(path, e)
    })?;
    // SAFETY: the file is ours alone while `lock` is held (every process opening it takes the
    // lock first); tampering by other means is outside the contract, as for any data file.
    let map = unsafe { memmap2::MmapOptions::new().populate().map_mut(&file) }
        .map_err(|e| file_error(path, e))?;
    if map.len() != bytes.len() {
        return Err(file_error(path, "changed size while opening"));
    }
    // SAFETY: the map holds the header page then `capacity` slots (checked just above), page
    // alignment keeps them aligned, every stamp was laid out for positions `head_seq..`
    // (recovered, then free), and the lock keeps the file ours for the ring's life.
    let ring = unsafe {
        Ring::mapped(
            map,
            HEADER_LEN,
            capacity,
            position(head_seq, capacity),
            position(tail_seq, capacity),
        )
    };
    Ok(Opened {
        ring,
        epoch,
        head_seq,
        tail_seq,
        voids: voids.into_boxed_slice(),
        runs: runs.into_boxed_slice(),
        lock,
    })
}

/// The lock beside a ring file: `<path>.lock`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::{MeterRing, Operation, Tier};

    /// A ring file as a layout-1 build left it: `events` published at sequences `0..`, the rest
    /// of the slots free for their next positions.
    fn layout_one_file(epoch: u64, capacity: usize, events: &[UsageEvent]) -> Vec<u8> {
        let v1 = Layout::V1;
        let mut bytes = vec![0u8; HEADER_LEN + capacity * v1.slot];
        put(&mut bytes, 0, &MAGIC);
        put(&mut bytes, 8, &VERSION.to_ne_bytes());
        put(&mut bytes, 12, &(HEADER_LEN as u32).to_ne_bytes());
        put(&mut bytes, 16, &(capacity as u64).to_ne_bytes());
        put(&mut bytes, 24, &(v1.slot as u32).to_ne_bytes());
        put(&mut bytes, 28, &(v1.value as u32).to_ne_bytes());
        for (i, v) in v1.fingerprint().0.iter().enumerate() {
            put(&mut bytes, 32 + 4 * i, &v.to_ne_bytes());
        }
        put(&mut bytes, 80, &epoch.to_ne_bytes());
        put(&mut bytes, 88, &1u32.to_ne_bytes());
        put(&mut bytes, RUNS_AT, &0u64.to_ne_bytes());
        put(
            &mut bytes,
            RUNS_AT + 8,
            &1_700_000_000_000_000_000u64.to_ne_bytes(),
        );
        let lap = one_lap(capacity);
        for seq in 0..capacity as u64 {
            let pos = position(seq, capacity);
            let at = HEADER_LEN + (pos & (lap - 1)) as usize * v1.slot;
            match events.get(seq as usize) {
                Some(event) => {
                    put(&mut bytes, at, &(pos + 1).to_ne_bytes());
                    let value = at + v1.value..at + v1.value + v1.event;
                    v1.encode(event, &mut bytes[value]);
                }
                None => put(&mut bytes, at, &pos.to_ne_bytes()),
            }
        }
        bytes
    }

    #[test]
    fn a_ring_file_from_a_layout_one_build_is_recovered_and_rewritten() {
        let dir = std::env::temp_dir().join(format!("meter-layout-one-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("meter.ring");
        let events: Vec<UsageEvent> = (0..5)
            .map(|i| {
                UsageEvent::new(
                    "tenant",
                    &format!("agent-{i}"),
                    Operation::AgentMessage,
                    Tier::Premium,
                )
                .unwrap()
                .tokens(i)
            })
            .collect();
        std::fs::write(&path, layout_one_file(0xabcd, 8, &events)).unwrap();

        let ring = MeterRing::open(&path, 8).unwrap();
        assert_eq!(
            ring.epoch(),
            0xabcd,
            "the epoch, and so every event id, carries over"
        );
        let mut out = Vec::new();
        while ring.drain_held(&mut out, 8) > 0 {}
        let agents: Vec<String> = out.iter().map(|d| d.event.agent.to_string()).collect();
        assert_eq!(
            agents,
            ["agent-0", "agent-1", "agent-2", "agent-3", "agent-4"]
        );
        assert_eq!(out[3].event.tokens, 3);
        assert_eq!(
            out.iter().map(|d| d.id.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        drop(ring);
        // Rewritten in this build's layout: opening again still finds them, held.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 8 * Layout::CURRENT.slot);
        let ring = MeterRing::open(&path, 8).unwrap();
        let mut again = Vec::new();
        while ring.drain_held(&mut again, 8) > 0 {}
        assert_eq!(again.len(), 5);
        drop(ring);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unknown_layout_is_refused_by_name() {
        let mut bytes = layout_one_file(1, 8, &[]);
        put(&mut bytes, 32 + 4 * 3, &77u32.to_ne_bytes());
        let Err(err) = decode_header(&bytes) else {
            panic!("an unknown layout was accepted");
        };
        assert!(err.contains("event layout this one does not know"), "{err}");
    }
}
