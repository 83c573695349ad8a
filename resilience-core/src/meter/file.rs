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
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::mem::offset_of;
use std::path::{Path, PathBuf};

use super::MeterError;
use super::event::{InlineId, MAX_ID_LEN, Operation, Tier, UsageEvent};
use super::lock::{LockError, LockFile};
use crate::clock::Nanos;
use crate::governance::GovernanceHash;
use crate::ring::{Ring, Slot, count, one_lap, position};

const MAGIC: [u8; 8] = *b"RSLMETR1";
const VERSION: u32 = 1;
/// Bytes before the first slot (one page, so the slots are page-aligned).
pub(crate) const HEADER_LEN: usize = 4096;
/// Runs remembered for timestamps; past this the oldest is dropped (its events then take the
/// next run's clock, which can only make them look later).
const MAX_RUNS: usize = 200;
const RUNS_AT: usize = 96;

const SLOT: usize = size_of::<Slot<UsageEvent>>();
const VALUE: usize = offset_of!(Slot<UsageEvent>, value);
const EVENT: usize = size_of::<UsageEvent>();
const TENANT: usize = offset_of!(UsageEvent, tenant);
const AGENT: usize = offset_of!(UsageEvent, agent);
const OPERATION: usize = offset_of!(UsageEvent, operation);
const TIER: usize = offset_of!(UsageEvent, tier);
const TOKENS: usize = offset_of!(UsageEvent, tokens);
const LATENCY: usize = offset_of!(UsageEvent, latency_us);
const SCORE: usize = offset_of!(UsageEvent, compliance_score);
const AT: usize = offset_of!(UsageEvent, at);
const GOVERNANCE: usize = offset_of!(UsageEvent, governance);
const ID_LEN: usize = offset_of!(InlineId, len);
const ID_BYTES: usize = offset_of!(InlineId, bytes);
/// An `InlineId` length no real id has: marks a void slot in the file.
const VOID_LEN: u8 = u8::MAX;

const _: () = assert!(RUNS_AT + MAX_RUNS * 16 <= HEADER_LEN);
const _: () = assert!(HEADER_LEN.is_multiple_of(align_of::<Slot<UsageEvent>>()));
const _: () = assert!(SLOT.is_multiple_of(align_of::<Slot<UsageEvent>>()));

/// What a build's slots look like; a file written by a build whose layout differs is refused.
fn fingerprint() -> [u32; 12] {
    [
        SLOT as u32,
        EVENT as u32,
        TENANT as u32,
        AGENT as u32,
        OPERATION as u32,
        TIER as u32,
        TOKENS as u32,
        LATENCY as u32,
        SCORE as u32,
        AT as u32,
        GOVERNANCE as u32,
        0x0102_0304, // byte-order mark
    ]
}

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

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(b)
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

fn encode_header(header: &Header, out: &mut [u8]) {
    put(out, 0, &MAGIC);
    put(out, 8, &VERSION.to_ne_bytes());
    put(out, 12, &(HEADER_LEN as u32).to_ne_bytes());
    put(out, 16, &(header.capacity as u64).to_ne_bytes());
    put(out, 24, &(SLOT as u32).to_ne_bytes());
    put(out, 28, &(VALUE as u32).to_ne_bytes());
    for (i, v) in fingerprint().iter().enumerate() {
        put(out, 32 + 4 * i, &v.to_ne_bytes());
    }
    put(out, 80, &header.epoch.to_ne_bytes());
    put(out, 88, &(header.runs.len() as u32).to_ne_bytes());
    for (i, run) in header.runs.iter().enumerate() {
        put(out, RUNS_AT + 16 * i, &run.first_seq.to_ne_bytes());
        put(out, RUNS_AT + 16 * i + 8, &run.unix_base.to_ne_bytes());
    }
}

fn decode_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_LEN || bytes[..8] != MAGIC {
        return Err("not a meter ring file (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION || u32_at(bytes, 12) as usize != HEADER_LEN {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let expected = fingerprint();
    let found: Vec<u32> = (0..12).map(|i| u32_at(bytes, 32 + 4 * i)).collect();
    if u32_at(bytes, 24) as usize != SLOT
        || u32_at(bytes, 28) as usize != VALUE
        || found != expected
    {
        return Err(format!(
            "written by a build with another event layout ({found:?}, this build {expected:?}); \
             deliver it with that build or move it away"
        ));
    }
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
    Ok(Header {
        capacity: capacity as usize,
        epoch: u64_at(bytes, 80),
        runs,
    })
}

fn encode_id(out: &mut [u8], at: usize, id: &InlineId) {
    out[at + ID_LEN] = id.len;
    put(out, at + ID_BYTES, &id.bytes);
}

fn decode_id(value: &[u8], at: usize) -> Option<InlineId> {
    let len = usize::from(value[at + ID_LEN]);
    if len > MAX_ID_LEN {
        return None;
    }
    let text = core::str::from_utf8(&value[at + ID_BYTES..at + ID_BYTES + len]).ok()?;
    InlineId::new(text).ok()
}

/// Writes `event` into a slot's value bytes exactly as a typed store would lay it out.
fn encode_event(event: &UsageEvent, out: &mut [u8]) {
    encode_id(out, TENANT, &event.tenant);
    encode_id(out, AGENT, &event.agent);
    // `repr(u16)` enum with fields: the tag first, then the payload (RFC 2195).
    let (tag, code): (u16, u16) = match event.operation {
        Operation::ConstitutionalValidation => (0, 0),
        Operation::AgentMessage => (1, 0),
        Operation::PolicyEvaluation => (2, 0),
        Operation::DeliberationRequest => (3, 0),
        Operation::HitlApproval => (4, 0),
        Operation::Other(code) => (5, code),
    };
    put(out, OPERATION, &tag.to_ne_bytes());
    put(out, OPERATION + 2, &code.to_ne_bytes());
    out[TIER] = event.tier as u8;
    put(out, TOKENS, &event.tokens.to_ne_bytes());
    put(out, LATENCY, &event.latency_us.to_ne_bytes());
    put(out, SCORE, &event.compliance_score.to_bits().to_ne_bytes());
    put(out, AT, &event.at.as_nanos().to_ne_bytes());
    put(out, GOVERNANCE, &event.governance.as_u64().to_ne_bytes());
}

/// Reads an event back from a slot's value bytes; `None` when any field is invalid.
fn decode_event(value: &[u8]) -> Option<UsageEvent> {
    let tenant = decode_id(value, TENANT)?;
    let agent = decode_id(value, AGENT)?;
    let mut tag = [0; 2];
    tag.copy_from_slice(&value[OPERATION..OPERATION + 2]);
    let mut code = [0; 2];
    code.copy_from_slice(&value[OPERATION + 2..OPERATION + 4]);
    let operation = match u16::from_ne_bytes(tag) {
        0 => Operation::ConstitutionalValidation,
        1 => Operation::AgentMessage,
        2 => Operation::PolicyEvaluation,
        3 => Operation::DeliberationRequest,
        4 => Operation::HitlApproval,
        5 => Operation::Other(u16::from_ne_bytes(code)),
        _ => return None,
    };
    let tier = match value[TIER] {
        0 => Tier::Free,
        1 => Tier::Standard,
        2 => Tier::Premium,
        3 => Tier::Enterprise,
        _ => return None,
    };
    let mut event = UsageEvent::from_ids(tenant, agent, operation, tier)
        .compliance_score(f32::from_bits(u32_at(value, SCORE)))
        .ok()?;
    event.tokens = u32_at(value, TOKENS);
    event.latency_us = u32_at(value, LATENCY);
    event.at = Nanos::from_nanos(u64_at(value, AT));
    event.governance = GovernanceHash::from_u64(u64_at(value, GOVERNANCE));
    Some(event)
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
    let header = decode_header(bytes).map_err(|reason| file_error(path, reason))?;
    let capacity = header.capacity;
    let expected = HEADER_LEN + capacity * SLOT;
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
        let at = HEADER_LEN + i * SLOT;
        let stamp = u64_at(bytes, at);
        let index = (stamp & (lap - 1)) as usize;
        if index == i + 1 {
            let seq = count(stamp - 1, capacity);
            published.push((seq, decode_event(&bytes[at + VALUE..at + VALUE + EVENT])));
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

    let mut bytes = vec![0u8; HEADER_LEN + capacity * SLOT];
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
        let at = HEADER_LEN + (pos & (lap - 1)) as usize * SLOT;
        let value = at + VALUE..at + VALUE + EVENT;
        if seq < tail_seq {
            put(&mut bytes, at, &(pos + 1).to_ne_bytes());
            while events.next_if(|(s, _)| *s < seq).is_some() {}
            match events.next_if(|(s, _)| *s == seq) {
                Some((_, Some(event))) => encode_event(&event, &mut bytes[value]),
                _ => {
                    voids.push(seq);
                    bytes[value.start + TENANT + ID_LEN] = VOID_LEN;
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

    #[test]
    fn an_event_survives_encode_and_decode() {
        let event = UsageEvent::new("tenant-ä", "agent", Operation::Other(7), Tier::Premium)
            .unwrap()
            .tokens(99)
            .compliance_score(0.25)
            .unwrap();
        let mut bytes = [0u8; EVENT];
        encode_event(&event, &mut bytes);
        assert_eq!(decode_event(&bytes), Some(event));
        bytes[TIER] = 9;
        assert_eq!(decode_event(&bytes), None, "a bad tier is refused");
    }

    #[test]
    fn a_void_marker_never_decodes() {
        let mut bytes = [0u8; EVENT];
        bytes[TENANT + ID_LEN] = VOID_LEN;
        assert_eq!(decode_event(&bytes), None);
    }
}
