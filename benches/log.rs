//! Commit-log throughput: appends of 1 KiB entries under each fsync policy (one appender and
//! sixteen), sequential reads, and the baselines they are judged against, all in one run.
//! Results and the exact commands: docs/benchmarks.md ("Commit log").
//!
//! An append call carries 16 entries (16 KiB): a burst of AMQP publishes taken from one
//! socket read, or the 16 KiB of a Kafka producer's default `batch.size`. Under `Always` two
//! shapes of appender run:
//! - synchronous (`_x16`, `_x64`): each appender waits for `sync_to` after every call, so it
//!   never has more than one call's entries unsynced (a confirm window of 16 or 64);
//! - windowed (`_window<W>`): each appender keeps appending while up to `W` of its entries
//!   await durability and waits (`sync_to` its oldest call) only when that window is full, as
//!   a publisher with a confirm window of `W` or a Kafka producer with requests in flight
//!   does; a flusher thread keeps a sync running while anything is unsynced, as the broker's
//!   per-partition flusher does.
//!
//! Data goes to `FERRYMQ_BENCH_DIR` (default `target/bench-data`), which should be on the disk
//! measured with dd.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "benchmark harness: a failure aborts the run; sizes are small constants"
)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{IoSlice, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig};

const ENTRY: usize = 1024;
const BATCH: usize = 16;
const MIB: u64 = 1 << 20;

fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("FERRYMQ_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(policy: FsyncPolicy) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let config = LogConfig {
        fsync: policy,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path().join("log"), config).unwrap();
    (dir, log)
}

/// Appends `batches` batches of `size` x 1 KiB; with `sync`, waits for durability after each.
fn append_batches(log: &Log, payload: &[u8], size: usize, batches: u64, sync: bool) {
    let parts: &[&[u8]] = &[payload];
    let entry = Entry {
        timestamp: 1_700_000_000_000,
        span: 1,
        parts,
    };
    let batch = vec![entry; size];
    for _ in 0..batches {
        let appended = log.append(&batch).unwrap();
        if sync {
            log.sync_to(appended.next_offset).unwrap();
        }
    }
}

/// Appends `batches` batches of `size` x 1 KiB, keeping at most `window` entries unsynced:
/// when the next batch would overflow the window, waits until the oldest batches are durable.
/// Ends with everything durable.
fn append_windowed(log: &Log, payload: &[u8], size: usize, batches: u64, window: usize) {
    let parts: &[&[u8]] = &[payload];
    let entry = Entry {
        timestamp: 1_700_000_000_000,
        span: 1,
        parts,
    };
    let batch = vec![entry; size];
    let mut pending = VecDeque::new();
    for _ in 0..batches {
        while pending.len() * size + size > window {
            let oldest = pending.pop_front().unwrap();
            log.sync_to(oldest).unwrap();
            let durable = log.durable_offset();
            while pending.front().is_some_and(|&end| end <= durable) {
                pending.pop_front();
            }
        }
        pending.push_back(log.append(&batch).unwrap().next_offset);
    }
    if let Some(&last) = pending.back() {
        log.sync_to(last).unwrap();
    }
}

/// The broker's per-partition flusher: keeps one sync running while anything is unsynced.
fn flusher(log: &Log, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        let next = log.next_offset();
        if log.durable_offset() < next {
            log.sync_to(next).unwrap();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// One timed run: `appenders` threads append `volume` bytes between them in batches of `size`.
fn run(log: &Log, case: &Case, payload: &[u8]) -> Duration {
    let Case {
        policy,
        appenders,
        batch,
        window,
        volume,
    } = *case;
    let batches = volume / (batch * ENTRY) as u64 / appenders;
    let sync = policy == FsyncPolicy::Always;
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        if let FsyncPolicy::Interval(_) = policy {
            // The owner's ticker.
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    log.flush_if_due(Instant::now()).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        if window.is_some() {
            s.spawn(|| flusher(log, &done));
        }
        let workers: Vec<_> = (0..appenders)
            .map(|_| {
                s.spawn(|| match window {
                    Some(window) => append_windowed(log, payload, batch, batches, window),
                    None => append_batches(log, payload, batch, batches, sync),
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    started.elapsed()
}

struct Case {
    policy: FsyncPolicy,
    appenders: u64,
    /// Entries per append call.
    batch: usize,
    /// Entries each appender may have unsynced (windowed appenders, `Always` only); `None`:
    /// synchronous appenders under `Always`.
    window: Option<usize>,
    /// Payload bytes per timed run.
    volume: u64,
}

fn appends(c: &mut Criterion) {
    let payload: Vec<u8> = (0..ENTRY).map(|i| (i * 7) as u8).collect();
    let mut group = c.benchmark_group("log_append_1KiB");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    let interval = FsyncPolicy::Interval(Duration::from_millis(10));
    let always = FsyncPolicy::Always;
    let cases = [
        ("never", FsyncPolicy::Never, 1, BATCH, None, 64 * MIB),
        ("never", FsyncPolicy::Never, 16, BATCH, None, 64 * MIB),
        ("never", FsyncPolicy::Never, 1, BATCH, None, 768 * MIB),
        ("interval_10ms", interval, 1, BATCH, None, 64 * MIB),
        ("interval_10ms", interval, 16, BATCH, None, 64 * MIB),
        ("always", always, 1, BATCH, None, 32 * MIB),
        ("always", always, 16, BATCH, None, 32 * MIB),
        ("always", always, 16, 4 * BATCH, None, 64 * MIB),
        // Kafka producer defaults: 5 requests in flight x 16 KiB batch.size.
        ("always", always, 16, BATCH, Some(80), 64 * MIB),
        // Publisher confirms with a window of 1000 (issue 7's A2).
        ("always", always, 16, BATCH, Some(1000), 128 * MIB),
        // Producers shaped like librdkafka's defaults under load: large requests (64 KiB
        // here; its batch.size is 1 MB) and several in flight (4 MiB each; 5 x 1 MB there).
        ("always", always, 16, 4 * BATCH, Some(4000), 256 * MIB),
    ];
    for (name, policy, appenders, batch, window, volume) in cases {
        let case = Case {
            policy,
            appenders,
            batch,
            window,
            volume,
        };
        let mut id = format!("{name}/{appenders}_appenders_x{batch}");
        if let Some(window) = window {
            id = format!("{id}_window{window}");
        }
        if volume > 64 * MIB {
            id = format!("{id}_{}MiB", volume / MIB);
        }
        group.throughput(Throughput::Bytes(volume));
        group.bench_function(id, |b| {
            if policy == FsyncPolicy::Never {
                // A fresh log per run: nothing reaches the disk, so this measures the append
                // path into the page cache and no earlier run's writeback.
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (dir, log) = open(policy);
                        total += run(&log, &case, &payload);
                        log.delete().unwrap();
                        drop(dir);
                    }
                    total
                });
            } else {
                // One growing log, as in service: deleting synced files between runs would
                // bill this filesystem's online discard of them to the next run's fsyncs.
                let (_dir, log) = open(policy);
                b.iter_custom(|iters| (0..iters).map(|_| run(&log, &case, &payload)).sum());
            }
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let volume = 256 * MIB;
    let payload: Vec<u8> = (0..ENTRY).map(|i| (i * 7) as u8).collect();
    let (_dir, log) = open(FsyncPolicy::Never);
    append_batches(
        &log,
        &payload,
        BATCH,
        volume / (BATCH * ENTRY) as u64,
        false,
    );
    let mut group = c.benchmark_group("log_read_1KiB");
    group.sample_size(10).throughput(Throughput::Bytes(volume));
    // 1 MiB per call: Kafka's default max.partition.fetch.bytes.
    group.bench_function("sequential_1MiB_reads", |b| {
        b.iter(|| {
            let (mut offset, mut bytes) = (0, 0);
            while offset < log.next_offset() {
                let entries = log.read(offset, MIB as usize).unwrap();
                bytes += entries.iter().map(|e| e.payload.len()).sum::<usize>();
                offset = entries.last().unwrap().next_offset();
            }
            assert_eq!(bytes as u64, volume);
            black_box(bytes)
        });
    });
    group.finish();
}

/// What the append path is judged against: copying the same bytes in memory, and the parts of
/// the path no log can avoid (the checksum, the kernel's page-cache write).
fn baselines(c: &mut Criterion) {
    let volume = 64 * MIB;
    let payload: Vec<u8> = (0..ENTRY).map(|i| (i * 7) as u8).collect();
    let mut group = c.benchmark_group("baseline_1KiB");
    group.sample_size(10).throughput(Throughput::Bytes(volume));
    let copy = |dst: &mut [u8]| {
        for slot in dst.chunks_exact_mut(ENTRY) {
            slot.copy_from_slice(black_box(&payload));
        }
    };
    let mut warm = vec![1u8; volume as usize];
    group.bench_function("memcpy_prefaulted", |b| {
        b.iter(|| copy(black_box(&mut warm)));
    });
    group.bench_function("memcpy_fresh_pages", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut fresh = vec![0u8; volume as usize];
                let started = Instant::now();
                copy(black_box(&mut fresh));
                total += started.elapsed();
                drop(black_box(fresh));
            }
            total
        });
    });
    group.bench_function("crc32", |b| {
        b.iter(|| {
            (0..volume / ENTRY as u64)
                .fold(0u32, |acc, _| acc ^ crc32fast::hash(black_box(&payload)))
        });
    });
    // The exact byte stream a 16-entry append writes (header + payload per entry), written
    // with the same vectored call but nothing else: the floor under `Never`.
    group.bench_function("writev_log_pattern", |b| {
        let header = [1u8; 28];
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                let file = std::fs::File::create(dir.path().join("raw")).unwrap();
                let started = Instant::now();
                for _ in 0..volume / (BATCH * ENTRY) as u64 {
                    let mut slices: Vec<IoSlice<'_>> = (0..BATCH)
                        .flat_map(|_| [IoSlice::new(&header), IoSlice::new(&payload)])
                        .collect();
                    let mut rest = &mut slices[..];
                    while !rest.is_empty() {
                        let n = (&file).write_vectored(rest).unwrap();
                        IoSlice::advance_slices(&mut rest, n);
                    }
                }
                total += started.elapsed();
            }
            total
        });
    });
    // The cheapest way to move the same bytes into a file's page cache: large, page-aligned
    // plain writes (whole large folios, one call per 64 KiB). No append path that writes
    // files can beat it, so it bounds `Never` from above.
    group.bench_function("write_64KiB_aligned", |b| {
        let chunk = payload.repeat(64);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir_in(bench_dir()).unwrap();
                let mut file = std::fs::File::create(dir.path().join("raw")).unwrap();
                let started = Instant::now();
                for _ in 0..volume / chunk.len() as u64 {
                    file.write_all(&chunk).unwrap();
                }
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();

    // What the disk gives one thread that writes `chunk` bytes and then fdatasyncs: the
    // ceiling for group commit when that much is in flight (16 appenders x 16 KiB = 256 KiB;
    // windowed appenders reach several MiB).
    let mut group = c.benchmark_group("baseline_fdatasync");
    group.sample_size(10);
    for chunk in [256 * 1024, 1024 * 1024, 4096 * 1024] {
        let volume = 32 * MIB;
        group.throughput(Throughput::Bytes(volume));
        group.bench_function(format!("every_{}KiB", chunk / 1024), |b| {
            let buffer = payload.repeat(chunk / ENTRY);
            let dir = tempfile::tempdir_in(bench_dir()).unwrap();
            let mut file = std::fs::File::create(dir.path().join("raw")).unwrap();
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters * volume / chunk as u64 {
                    file.write_all(&buffer).unwrap();
                    file.sync_data().unwrap();
                }
                started.elapsed()
            });
        });
    }
    // The same disk with writes and fdatasyncs overlapped, as group commit overlaps them: one
    // thread writes 16 KiB chunks while another runs fdatasync after fdatasync, and the writer
    // never gets more than `window` bytes ahead of what is durable. No log code: the most any
    // `Always` log can do with that many bytes in flight (windowed appenders: 16 x 1000 KiB,
    // 16 x 4000 KiB).
    for window in [16 * MIB, 64 * MIB] {
        let volume = 256 * MIB;
        group.throughput(Throughput::Bytes(volume));
        group.bench_function(format!("pipelined_{}MiB_in_flight", window / MIB), |b| {
            let chunk = payload.repeat(BATCH);
            let dir = tempfile::tempdir_in(bench_dir()).unwrap();
            let file = std::fs::File::create(dir.path().join("raw")).unwrap();
            let mut end = 0;
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    end = write_pipelined(&file, &chunk, end, end + volume, window);
                }
                started.elapsed()
            });
        });
    }
    group.finish();
}

/// Writes `chunk` from byte `from` until `to` while a second thread fdatasyncs in a loop,
/// staying at most `window` bytes ahead of the last completed fdatasync; returns when all is
/// durable, with the end of the file.
fn write_pipelined(file: &std::fs::File, chunk: &[u8], from: u64, to: u64, window: u64) -> u64 {
    use std::sync::atomic::AtomicU64;
    let written = AtomicU64::new(from);
    let durable = AtomicU64::new(from);
    std::thread::scope(|s| {
        s.spawn(|| {
            loop {
                let target = written.load(Ordering::Acquire);
                if target > durable.load(Ordering::Relaxed) {
                    file.sync_data().unwrap();
                    durable.store(target, Ordering::Release);
                } else if target >= to {
                    return;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut end = from;
        while end < to {
            while end + chunk.len() as u64 - durable.load(Ordering::Acquire) > window {
                std::thread::yield_now();
            }
            let mut w = file;
            w.write_all(chunk).unwrap();
            end += chunk.len() as u64;
            written.store(end, Ordering::Release);
        }
    });
    written.load(Ordering::Relaxed)
}

criterion_group!(benches, baselines, appends, reads);
criterion_main!(benches);
