use super::*;
use crate::stream::batch::RecordBatch;
use kafka_protocol::records::Compression;

fn batch(pid: i64, epoch: i16, first: i32, n: i64) -> RecordBatch {
    let bytes = crate::stream::batch::tests::encoded(n, Compression::None, pid, first);
    let mut raw = bytes::BytesMut::from(&bytes[..]);
    raw[51..53].copy_from_slice(&epoch.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    RecordBatch::parse(raw.freeze()).unwrap()
}

fn appended(b: &RecordBatch, base: u64) -> AppendedBatch {
    AppendedBatch {
        first_seq: b.base_sequence(),
        last_seq: b.last_sequence(),
        base_offset: base,
        log_append_time: -1,
    }
}

#[test]
fn a_retried_batch_among_the_last_five_is_a_duplicate_with_its_offset() {
    let mut p = Producers::default();
    let mut base = 0;
    let mut sent = Vec::new();
    for i in 0..7 {
        let b = batch(1, 0, i * 2, 2);
        assert_eq!(p.check(&b), Ok(SequenceCheck::Append));
        p.record(1, 0, appended(&b, base));
        sent.push((b, base));
        base += 2;
    }
    for (b, at) in &sent[2..] {
        assert_eq!(p.check(b), Ok(SequenceCheck::Duplicate(appended(b, *at))));
    }
    // The oldest two fell out of the window: no longer recognised, and out of order.
    assert!(matches!(
        p.check(&sent[0].0),
        Err(SequenceError::OutOfOrder { .. })
    ));
}

#[test]
fn gaps_and_fencing() {
    let mut p = Producers::default();
    let b0 = batch(9, 3, 0, 1);
    p.record(9, 3, appended(&b0, 0));
    assert_eq!(
        p.check(&batch(9, 3, 2, 1)),
        Err(SequenceError::OutOfOrder {
            producer_id: 9,
            epoch: 3,
            last: 0,
            got: 2
        })
    );
    assert_eq!(p.check(&batch(9, 3, 1, 1)), Ok(SequenceCheck::Append));
    assert!(matches!(
        p.check(&batch(9, 2, 1, 1)),
        Err(SequenceError::Fenced { current: 3, .. })
    ));
    assert_eq!(p.check(&batch(9, 4, 0, 1)), Ok(SequenceCheck::Append));
    assert!(matches!(
        p.check(&batch(9, 4, 5, 1)),
        Err(SequenceError::OutOfOrder { .. })
    ));
    // Unknown producers (new, or forgotten after retention) may start anywhere.
    assert_eq!(p.check(&batch(10, 0, 17, 1)), Ok(SequenceCheck::Append));
}

#[test]
fn snapshots_round_trip_and_reject_damage() {
    let mut p = Producers::default();
    for pid in 0..3 {
        for i in 0..4 {
            let b = batch(pid, 1, i, 1);
            p.record(
                pid,
                1,
                appended(&b, u64::try_from(pid * 10 + i64::from(i)).unwrap()),
            );
        }
    }
    let bytes = p.encode(42);
    assert_eq!(Producers::decode(&bytes), Some((p.clone(), 42)));
    for cut in 0..bytes.len() {
        assert_eq!(Producers::decode(&bytes[..cut]), None);
    }
    let mut flipped = bytes.clone();
    flipped[10] ^= 1;
    assert_eq!(Producers::decode(&flipped), None);
    p.truncate_below(21);
    assert_eq!(p.len(), 1);
}
