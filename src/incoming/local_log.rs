//! [`LocalLogIncoming`]: the embedded incoming store, an append-only log with
//! group commit and an in-memory index.
//!
//! # Files
//!
//! One directory of *segments* named `{id:08x}.log`, shared by all sacks (one
//! `fdatasync` per group commit whatever the number of sacks touched; a file
//! per sack would cost one per sack). A segment starts with a 16-byte header
//! (`b"GNOCINC\0"`, `u32` version 1, `u32` zero) followed by framed records
//! (see `codec`): *measures* records (one per batch, or per 1 Mi measures of a
//! batch) and *ack* records. Only the newest segment, the *active* one, is
//! written; each [`LocalLogIncoming::open`] starts a fresh one.
//!
//! # Index
//!
//! In memory, per sack: its live measures records `(segment, offset, len,
//! count, metric)` in log order (appending one is a sequential push), per
//! metric the number of live records and measures, and the roaring bitmap of
//! metrics with pending measures; per segment, the number of live records.
//! [`LocalLogIncoming::open`] rebuilds it by replaying the segments in order:
//! a measures record adds itself; an ack entry `(metric, upto)` removes the
//! metric's records that precede the ack record and sit at or before `upto`.
//! About 32 bytes of memory per pending record.
//!
//! # Writes: group commit
//!
//! Callers encode their records themselves (in parallel) and hand the buffer
//! to one writer thread. The writer takes every request queued at that moment,
//! writes them back to back, calls `fdatasync` once, applies them to the index
//! in log order, and only then completes the callers. While it syncs, the next
//! group queues up. A failed write or sync truncates the segment back to where
//! the group started and fails every caller of that group.
//!
//! # Crash safety
//!
//! - An append returns `Ok` only after its records are fsynced; a crash can only
//!   tear records no caller was told about, at the tail of the log (the
//!   newest segment holding records). Replay stops at the first record there
//!   whose length or CRC-32 is wrong and truncates the segment at that point;
//!   such damage anywhere else is reported as [`IncomingError::Corrupt`].
//! - `acknowledge` appends an ack record (fsynced) naming, per metric, the
//!   last position `read` returned. Records appended after the read have later
//!   positions, so they survive the ack and every replay of it.
//! - A segment is deleted only when it and every older segment hold no live
//!   record (deletions go oldest first, each made durable before the next).
//!   Ack records only name earlier positions, so deleting such a prefix never
//!   revives anything: the records an ack in a deleted segment covered are in
//!   deleted segments too.
//! - The active segment rotates at 64 MiB, or at 1 MiB when nothing is
//!   pending; new segment files and deletions are fsynced in the directory.
//!
//! One process may open a directory at a time: an exclusive `flock` on
//! `LOCK` in it refuses a second one ([`IncomingError::InUse`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use roaring::RoaringBitmap;
use tokio::sync::oneshot;

use super::codec::{self, Body, Frame};
use super::{
    check_sack, sack_of, validate, Backlog, Incoming, IncomingError, MeasureBatch, Measures,
    MetricSeq, Notifier, Pending, Receipt, Sack, Wakeup,
};

const SEGMENT_MAGIC: &[u8; 8] = b"GNOCINC\0";
const SEGMENT_VERSION: u32 = 1;
const SEGMENT_HEADER: u64 = 16;
/// The active segment rotates past this size.
const ROTATE_BYTES: u64 = 64 << 20;
/// ... or past this size when nothing is pending any more.
const ROTATE_EMPTY_BYTES: u64 = 1 << 20;
/// A group commit stops collecting requests past this many bytes.
const GROUP_MAX_BYTES: usize = 64 << 20;
/// Batches are split into records of at most this many measures.
const RECORD_MAX_MEASURES: usize = 1 << 20;
/// Adjacent records are read with one `pread` up to this size.
const READ_RANGE_MAX: u64 = 8 << 20;

/// Where a record starts in the log; log order is the order of positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    segment: u32,
    offset: u64,
}

impl Position {
    /// Beyond every record: an ack up to here acknowledges everything before it.
    const END: Position = Position {
        segment: u32::MAX,
        offset: u64::MAX,
    };
}

/// A live measures record, as the index keeps it.
#[derive(Debug, Clone, Copy)]
struct RecordLoc {
    pos: Position,
    len: u32,
    count: u32,
    metric: MetricSeq,
}

#[derive(Debug, Default, Clone, Copy)]
struct MetricState {
    records: u64,
    measures: u64,
}

/// Hashes compact metric ids with one folded multiplication: SipHash costs
/// more than the rest of an index update, and ids are not attacker-chosen
/// beyond what a caller may already write.
#[derive(Debug, Clone, Copy, Default)]
struct SeqHash;

impl std::hash::BuildHasher for SeqHash {
    type Hasher = SeqHasher;
    fn build_hasher(&self) -> SeqHasher {
        SeqHasher(0)
    }
}

#[derive(Debug)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        let product = u128::from(self.0 ^ 0x243f_6a88_85a3_08d3) * 0x9e37_79b9_7f4a_7c15;
        (product as u64) ^ ((product >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 << 32) ^ u64::from(n);
    }
}

/// One sack's pending measures: its live records in log order (appending is
/// a sequential push, cheap even with many metrics), per-metric counters and
/// the bitmap `pending` hands out.
#[derive(Debug, Default)]
struct SackState {
    bitmap: RoaringBitmap,
    metrics: HashMap<MetricSeq, MetricState, SeqHash>,
    records: Vec<RecordLoc>,
}

#[derive(Debug)]
struct SegmentState {
    file: Arc<File>,
    path: PathBuf,
    /// Measures records not yet acknowledged.
    live: u64,
}

#[derive(Debug)]
struct Index {
    sacks: Vec<SackState>,
    segments: BTreeMap<u32, SegmentState>,
    measures: u64,
    metrics: u64,
}

impl Index {
    fn new(sack_count: u32) -> Self {
        Self {
            sacks: (0..sack_count).map(|_| SackState::default()).collect(),
            segments: BTreeMap::new(),
            measures: 0,
            metrics: 0,
        }
    }

    fn sack_count(&self) -> u32 {
        self.sacks.len() as u32
    }

    /// Indexes a measures record; the caller counts it live in its segment.
    fn insert(&mut self, loc: RecordLoc) {
        let sack = sack_of(loc.metric, self.sack_count()).0 as usize;
        let state = &mut self.sacks[sack];
        state.records.push(loc);
        let entry = state.metrics.entry(loc.metric).or_insert_with(|| {
            state.bitmap.insert(loc.metric);
            self.metrics += 1;
            MetricState::default()
        });
        entry.records += 1;
        entry.measures += u64::from(loc.count);
        self.measures += u64::from(loc.count);
    }

    fn add_live(&mut self, segment: u32, records: u64) {
        if let Some(segment) = self.segments.get_mut(&segment) {
            segment.live += records;
        }
    }

    /// Applies one ack record: for each `(metric, upto)`, removes the
    /// metric's indexed records at or before `upto`.
    fn ack(&mut self, entries: &[(MetricSeq, Position)]) {
        let sack_count = self.sack_count();
        let mut by_sack: BTreeMap<u32, HashMap<MetricSeq, Position, SeqHash>> = BTreeMap::new();
        for &(metric, upto) in entries {
            let acked = by_sack.entry(sack_of(metric, sack_count).0).or_default();
            let slot = acked.entry(metric).or_insert(upto);
            *slot = (*slot).max(upto);
        }
        for (sack, acked) in by_sack {
            let SackState {
                bitmap,
                metrics,
                records,
            } = &mut self.sacks[sack as usize];
            if !acked.keys().any(|m| metrics.contains_key(m)) {
                continue;
            }
            let mut dead_per_segment: Vec<(u32, u64)> = Vec::new();
            let mut removed = 0;
            records.retain(|r| match acked.get(&r.metric) {
                Some(upto) if r.pos <= *upto => {
                    if let Some(state) = metrics.get_mut(&r.metric) {
                        state.records -= 1;
                        state.measures -= u64::from(r.count);
                    }
                    removed += u64::from(r.count);
                    match dead_per_segment.last_mut() {
                        Some((segment, n)) if *segment == r.pos.segment => *n += 1,
                        _ => dead_per_segment.push((r.pos.segment, 1)),
                    }
                    false
                }
                _ => true,
            });
            self.measures -= removed;
            for metric in acked.keys() {
                if metrics.get(metric).is_some_and(|s| s.records == 0) {
                    metrics.remove(metric);
                    bitmap.remove(*metric);
                    self.metrics -= 1;
                }
            }
            for (segment, n) in dead_per_segment {
                if let Some(segment) = self.segments.get_mut(&segment) {
                    segment.live -= n;
                }
            }
        }
    }

    /// Removes from the index the oldest segments (never `keep`) that hold no
    /// live record, up to the first one that does; returns their paths.
    fn take_dead_prefix(&mut self, keep: u32) -> Vec<PathBuf> {
        let mut dead = Vec::new();
        while let Some(entry) = self.segments.first_entry() {
            if *entry.key() == keep || entry.get().live > 0 {
                break;
            }
            dead.push(entry.remove().path);
        }
        dead
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    sack_count: u32,
    index: Mutex<Index>,
    notifier: Notifier,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One measures record inside a request buffer.
#[derive(Debug)]
struct Rec {
    metric: MetricSeq,
    rel: usize,
    len: u32,
    count: u32,
}

#[derive(Debug)]
enum Op {
    Append(Vec<Rec>),
    Ack(Vec<(MetricSeq, Position)>),
}

#[derive(Debug)]
struct Request {
    /// Framed records, ready to write.
    buf: Vec<u8>,
    op: Op,
    reply: oneshot::Sender<Result<(), IncomingError>>,
}

/// The embedded incoming store: an append-only log on the local filesystem
/// with group commit, and an in-memory index of pending measures. See the
/// [module documentation](self) for the file format and the crash-safety
/// argument.
pub struct LocalLogIncoming {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// Holds the directory's exclusive `flock`: two processes appending to
    /// and acknowledging one log would corrupt each other's index. Released
    /// after the writer has stopped (fields drop after `Drop::drop`).
    _lock: File,
}

impl std::fmt::Debug for LocalLogIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLogIncoming")
            .field("dir", &self.shared.dir)
            .field("sack_count", &self.shared.sack_count)
            .finish_non_exhaustive()
    }
}

impl LocalLogIncoming {
    /// Opens (creating it if needed) the log in `dir`, replays it to rebuild
    /// the index, truncates a torn tail left by a crash, deletes fully
    /// acknowledged segments and starts a fresh active segment. Blocking: call
    /// it from `spawn_blocking` (as [`open`](super::open) does) when in async
    /// code.
    pub fn open(dir: impl Into<PathBuf>, sack_count: u32) -> Result<Self, IncomingError> {
        let dir = dir.into();
        let sack_count = sack_count.max(1);
        fs::create_dir_all(&dir).map_err(|e| IncomingError::io(&dir, e))?;
        let lock = lock_dir(&dir)?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| IncomingError::io(&dir, e))? {
            let entry = entry.map_err(|e| IncomingError::io(&dir, e))?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        // The tail of the log is the newest segment holding more than a
        // header: only there can a crash have torn a record.
        let mut tail = None;
        for &id in ids.iter().rev() {
            let path = segment_path(&dir, id);
            let len = fs::metadata(&path)
                .map_err(|e| IncomingError::io(&path, e))?
                .len();
            if len > SEGMENT_HEADER || tail.is_none() {
                tail = Some(id);
            }
            if len > SEGMENT_HEADER {
                break;
            }
        }
        let mut index = Index::new(sack_count);
        let mut empty = Vec::new();
        for &id in &ids {
            let last = Some(id) >= tail;
            let path = segment_path(&dir, id);
            if !replay_segment(&mut index, &path, id, last)? {
                // No record at all (a crash right after rotation, or an empty
                // run): no acks either, so it may go whatever its position.
                index.segments.remove(&id);
                empty.push(path);
            }
        }
        let next_id = ids.last().map_or(1, |id| id + 1);
        let mut dead = empty;
        dead.extend(index.take_dead_prefix(u32::MAX));
        remove_segments(&dir, &dead)?;

        let file = create_segment(&dir, next_id)?;
        index.segments.insert(
            next_id,
            SegmentState {
                file: file.clone(),
                path: segment_path(&dir, next_id),
                live: 0,
            },
        );
        let shared = Arc::new(Shared {
            dir,
            sack_count,
            index: Mutex::new(index),
            notifier: Notifier::new(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rx,
            active: file,
            active_id: next_id,
            active_len: SEGMENT_HEADER,
        };
        let writer = std::thread::Builder::new()
            .name("incoming-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| IncomingError::io(&shared.dir, e))?;
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            _lock: lock,
        })
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    async fn submit(&self, buf: Vec<u8>, op: Op) -> Result<(), IncomingError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or(IncomingError::Closed)?
            .send(Request { buf, op, reply })
            .map_err(|_| IncomingError::Closed)?;
        done.await.map_err(|_| IncomingError::Closed)?
    }

    async fn write_ack(&self, entries: Vec<(MetricSeq, Position)>) -> Result<(), IncomingError> {
        if entries.is_empty() {
            return Ok(());
        }
        let raw: Vec<(MetricSeq, u32, u64)> = entries
            .iter()
            .map(|(m, p)| (*m, p.segment, p.offset))
            .collect();
        let mut buf = Vec::new();
        codec::put_record(&mut buf, |b| codec::put_ack_body(b, &raw));
        self.submit(buf, Op::Ack(entries)).await
    }
}

/// Takes `dir/LOCK` exclusively, or says which directory is in use.
fn lock_dir(dir: &Path) -> Result<File, IncomingError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IncomingError::io(&path, e))?;
    // SAFETY: `file` is open for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
            IncomingError::InUse {
                dir: dir.to_owned(),
            }
        } else {
            IncomingError::io(&path, err)
        });
    }
    Ok(file)
}

impl Drop for LocalLogIncoming {
    /// Stops the writer after it has finished the requests already queued.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl Incoming for LocalLogIncoming {
    fn sack_count(&self) -> u32 {
        self.shared.sack_count
    }

    async fn append(&self, batches: Vec<MeasureBatch>) -> Result<(), IncomingError> {
        validate(&batches)?;
        // Records grouped by sack so that `read` fetches a sack's records
        // with fewer syscalls; stable, so a metric's batches keep their order.
        let order = order_by_sack(&batches, self.shared.sack_count);
        let batches: Vec<&MeasureBatch> = order.iter().map(|&i| &batches[i]).collect();
        let mut size = 0;
        let mut records = 0;
        for b in &batches {
            for chunk in b.timestamps.chunks(RECORD_MAX_MEASURES) {
                size += codec::RECORD_HEADER + codec::measures_body_len(chunk.len());
                records += 1;
            }
        }
        if records == 0 {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(size);
        let mut recs = Vec::with_capacity(records);
        for b in &batches {
            let chunks = b
                .timestamps
                .chunks(RECORD_MAX_MEASURES)
                .zip(b.values.chunks(RECORD_MAX_MEASURES));
            for (ts, vs) in chunks {
                let rel = buf.len();
                let len = codec::put_record(&mut buf, |buf| {
                    codec::put_measures_body(buf, b.metric, ts, vs)
                });
                recs.push(Rec {
                    metric: b.metric,
                    rel,
                    len: len as u32,
                    count: ts.len() as u32,
                });
            }
        }
        self.submit(buf, Op::Append(recs)).await
    }

    async fn pending(&self, sack: Sack) -> Result<RoaringBitmap, IncomingError> {
        check_sack(sack, self.shared.sack_count)?;
        Ok(self.shared.index().sacks[sack.0 as usize].bitmap.clone())
    }

    async fn read(&self, sack: Sack, metrics: &RoaringBitmap) -> Result<Pending, IncomingError> {
        check_sack(sack, self.shared.sack_count)?;
        let mut plan = Vec::new();
        let mut files = HashMap::new();
        let mut receipt = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        {
            let index = self.shared.index();
            let state = &index.sacks[sack.0 as usize];
            let wanted = metrics & &state.bitmap;
            let everything = wanted.len() == state.bitmap.len();
            for loc in &state.records {
                if !everything && !wanted.contains(loc.metric) {
                    continue;
                }
                plan.push(*loc);
                // Log order: the last one seen per metric is its newest.
                receipt.insert(loc.metric, loc.pos);
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    files.entry(loc.pos.segment)
                {
                    if let Some(segment) = index.segments.get(&loc.pos.segment) {
                        slot.insert((segment.file.clone(), segment.path.clone()));
                    }
                }
            }
            for metric in &wanted {
                if let Some(entry) = state.metrics.get(&metric) {
                    sizes.insert(metric, entry.measures as usize);
                }
            }
        }
        let measures = tokio::task::spawn_blocking(move || read_records(plan, &files, sizes))
            .await
            .map_err(|_| IncomingError::Closed)??;
        Ok(Pending::new(sack, measures, Receipt::LocalLog(receipt)))
    }

    async fn acknowledge(&self, done: Pending) -> Result<(), IncomingError> {
        let Receipt::LocalLog(receipt) = done.receipt else {
            return Err(IncomingError::ForeignReceipt);
        };
        self.write_ack(receipt.into_iter().collect()).await
    }

    async fn backlog(&self, details: bool) -> Result<Backlog, IncomingError> {
        let index = self.shared.index();
        let per_metric = details.then(|| {
            index
                .sacks
                .iter()
                .flat_map(|s| s.metrics.iter().map(|(m, st)| (*m, st.measures)))
                .collect()
        });
        Ok(Backlog {
            metrics: index.metrics,
            measures: index.measures,
            per_metric,
        })
    }

    async fn forget(&self, metric: MetricSeq) -> Result<(), IncomingError> {
        let pending = {
            let index = self.shared.index();
            let sack = sack_of(metric, index.sack_count()).0 as usize;
            index.sacks[sack].metrics.contains_key(&metric)
        };
        if !pending {
            return Ok(());
        }
        self.write_ack(vec![(metric, Position::END)]).await
    }

    fn subscribe(&self) -> Wakeup {
        self.shared.notifier.subscribe()
    }
}

/// Indexes of `batches` ordered by sack, stable (a counting sort).
fn order_by_sack(batches: &[MeasureBatch], sack_count: u32) -> Vec<usize> {
    let mut starts = vec![0usize; sack_count as usize + 1];
    for b in batches {
        starts[sack_of(b.metric, sack_count).0 as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order = vec![0; batches.len()];
    for (i, b) in batches.iter().enumerate() {
        let slot = &mut starts[sack_of(b.metric, sack_count).0 as usize];
        order[*slot] = i;
        *slot += 1;
    }
    order
}

/// Reads the planned records (sorted into log order, adjacent ones merged into
/// one `pread`) and decodes them into per-metric measures.
fn read_records(
    mut plan: Vec<RecordLoc>,
    files: &HashMap<u32, (Arc<File>, PathBuf)>,
    sizes: BTreeMap<MetricSeq, usize>,
) -> Result<BTreeMap<MetricSeq, Measures>, IncomingError> {
    let mut out: BTreeMap<MetricSeq, Measures> = sizes
        .into_iter()
        .map(|(m, n)| {
            let measures = Measures {
                timestamps: Vec::with_capacity(n),
                values: Vec::with_capacity(n),
            };
            (m, measures)
        })
        .collect();
    plan.sort_unstable_by_key(|loc| loc.pos);
    let mut buf = Vec::new();
    let mut i = 0;
    while i < plan.len() {
        let start = plan[i].pos;
        let mut end = start.offset + u64::from(plan[i].len);
        let mut j = i + 1;
        while j < plan.len() {
            let next = plan[j];
            if next.pos.segment != start.segment
                || next.pos.offset != end
                || end + u64::from(next.len) - start.offset > READ_RANGE_MAX
            {
                break;
            }
            end += u64::from(next.len);
            j += 1;
        }
        let (file, path) = files
            .get(&start.segment)
            .ok_or_else(|| IncomingError::Corrupt {
                location: format!("segment {:08x}", start.segment),
                offset: start.offset,
                reason: "segment of a pending record is missing".into(),
            })?;
        buf.clear();
        buf.resize((end - start.offset) as usize, 0);
        file.read_exact_at(&mut buf, start.offset)
            .map_err(|e| IncomingError::io(path, e))?;
        let mut at = 0;
        for loc in &plan[i..j] {
            let metric = &loc.metric;
            let corrupt = |reason: &str| IncomingError::Corrupt {
                location: path.display().to_string(),
                offset: loc.pos.offset,
                reason: reason.to_string(),
            };
            let bytes = &buf[at..at + loc.len as usize];
            at += loc.len as usize;
            let body = match codec::frame(bytes) {
                Frame::Record { body, .. } => body,
                Frame::Invalid(reason) => return Err(corrupt(reason)),
            };
            let view = codec::measures(body).map_err(corrupt)?;
            if view.metric != *metric {
                return Err(corrupt("record belongs to another metric"));
            }
            view.extend_into(out.entry(*metric).or_default());
        }
        i = j;
    }
    Ok(out)
}

/// Replays one segment into `index`. Returns false when it holds no record.
fn replay_segment(
    index: &mut Index,
    path: &Path,
    id: u32,
    last: bool,
) -> Result<bool, IncomingError> {
    let io = |e| IncomingError::io(path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let data = fs::read(path).map_err(io)?;
    let corrupt = |offset: usize, reason: &str| IncomingError::Corrupt {
        location: path.display().to_string(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if data.len() < SEGMENT_HEADER as usize {
        if last {
            // Torn while being created: it never held an acknowledged record.
            index.segments.insert(
                id,
                SegmentState {
                    file: Arc::new(file),
                    path: path.to_path_buf(),
                    live: 0,
                },
            );
            return Ok(false);
        }
        return Err(corrupt(0, "truncated segment header"));
    }
    if &data[..8] != SEGMENT_MAGIC || data[8..12] != SEGMENT_VERSION.to_le_bytes() {
        return Err(corrupt(0, "not an incoming segment (bad magic or version)"));
    }
    index.segments.insert(
        id,
        SegmentState {
            file: Arc::new(file),
            path: path.to_path_buf(),
            live: 0,
        },
    );
    let mut at = SEGMENT_HEADER as usize;
    let mut records = 0;
    while at < data.len() {
        match codec::frame(&data[at..]) {
            Frame::Record { body, len } => {
                match codec::body(body).map_err(|reason| corrupt(at, reason))? {
                    Body::Measures(view) => {
                        index.insert(RecordLoc {
                            pos: Position {
                                segment: id,
                                offset: at as u64,
                            },
                            len: len as u32,
                            count: view.count as u32,
                            metric: view.metric,
                        });
                        index.add_live(id, 1);
                    }
                    Body::Ack(ack) => {
                        let entries: Vec<_> = ack
                            .entries()
                            .map(|(metric, segment, offset)| (metric, Position { segment, offset }))
                            .collect();
                        index.ack(&entries);
                    }
                }
                records += 1;
                at += len;
            }
            Frame::Invalid(reason) if last => {
                // A torn tail: never acknowledged to any caller.
                tracing::warn!(
                    path = %path.display(),
                    offset = at,
                    dropped_bytes = data.len() - at,
                    reason,
                    "truncating torn tail of the incoming log"
                );
                let segment = &index.segments[&id];
                segment.file.set_len(at as u64).map_err(io)?;
                segment.file.sync_all().map_err(io)?;
                break;
            }
            Frame::Invalid(reason) => return Err(corrupt(at, reason)),
        }
    }
    Ok(records > 0)
}

fn parse_segment_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".log")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08x}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), IncomingError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IncomingError::io(dir, e))
}

/// Creates a segment with its header, durable (file and directory entry).
fn create_segment(dir: &Path, id: u32) -> Result<Arc<File>, IncomingError> {
    let path = segment_path(dir, id);
    let io = |e| IncomingError::io(&path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    let mut header = [0u8; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    file.write_all_at(&header, 0).map_err(io)?;
    file.sync_all().map_err(io)?;
    sync_dir(dir)?;
    Ok(Arc::new(file))
}

/// Deletes segments oldest first, each deletion durable before the next.
fn remove_segments(dir: &Path, paths: &[PathBuf]) -> Result<(), IncomingError> {
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IncomingError::io(path, e)),
        }
        sync_dir(dir)?;
    }
    Ok(())
}

/// The single writer: group commit, index updates, rotation and deletion.
#[derive(Debug)]
struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    active: Arc<File>,
    active_id: u32,
    active_len: u64,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut bytes = first.buf.len();
            let mut group = vec![first];
            while bytes < GROUP_MAX_BYTES {
                match self.rx.try_recv() {
                    Ok(request) => {
                        bytes += request.buf.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
            if let Err(error) = self.housekeeping() {
                tracing::error!(%error, "incoming log rotation or cleanup failed");
            }
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        let base = self.active_len;
        let path = segment_path(&self.shared.dir, self.active_id);
        let mut offset = base;
        let mut result = Ok(());
        for request in &group {
            result = self.active.write_all_at(&request.buf, offset);
            if result.is_err() {
                break;
            }
            offset += request.buf.len() as u64;
        }
        let result = result.and_then(|()| self.active.sync_data());
        if let Err(error) = result {
            tracing::error!(path = %path.display(), %error, "incoming log write failed");
            // Drop whatever part of the group reached the file.
            let _ = self.active.set_len(base);
            let source = Arc::new(error);
            for request in group {
                let _ = request.reply.send(Err(IncomingError::Io {
                    path: path.clone(),
                    source: source.clone(),
                }));
            }
            return;
        }
        self.active_len = offset;

        let mut appended = false;
        {
            let mut index = self.shared.index();
            let mut at = base;
            for request in &group {
                match &request.op {
                    Op::Append(recs) => {
                        appended = true;
                        for rec in recs {
                            let loc = RecordLoc {
                                pos: Position {
                                    segment: self.active_id,
                                    offset: at + rec.rel as u64,
                                },
                                len: rec.len,
                                count: rec.count,
                                metric: rec.metric,
                            };
                            index.insert(loc);
                        }
                        index.add_live(self.active_id, recs.len() as u64);
                    }
                    Op::Ack(entries) => index.ack(entries),
                }
                at += request.buf.len() as u64;
            }
        }
        if appended {
            self.shared.notifier.notify();
        }
        for request in group {
            let _ = request.reply.send(Ok(()));
        }
    }

    /// Rotates the active segment when it is large (or large enough and all
    /// acknowledged), then deletes the fully acknowledged oldest segments.
    fn housekeeping(&mut self) -> Result<(), IncomingError> {
        let idle = self.shared.index().measures == 0;
        if self.active_len >= ROTATE_BYTES || (idle && self.active_len >= ROTATE_EMPTY_BYTES) {
            let id = self.active_id + 1;
            let file = create_segment(&self.shared.dir, id)?;
            self.shared.index().segments.insert(
                id,
                SegmentState {
                    file: file.clone(),
                    path: segment_path(&self.shared.dir, id),
                    live: 0,
                },
            );
            self.active = file;
            self.active_id = id;
            self.active_len = SEGMENT_HEADER;
        }
        let dead = self.shared.index().take_dead_prefix(self.active_id);
        remove_segments(&self.shared.dir, &dead)
    }
}
