//! Kafka's default partitioner for keyed records: which partition a key lands in.
//!
//! The Java client's `BuiltInPartitioner` (and its older `DefaultPartitioner`) computes
//! `toPositive(murmur2(key)) % partitions`, where `murmur2` is the 32-bit MurmurHash2 with
//! Kafka's seed `0x9747b28c` over the key bytes, and `toPositive` clears the sign bit.
//! librdkafka's `murmur2` and `murmur2_random` partitioners compute the same value. Its
//! *default*, `consistent_random`, hashes with CRC-32 instead, so confluent-kafka and other
//! librdkafka producers agree with ferrymq only when configured with
//! `partitioner=murmur2_random` (the setting Confluent recommends for Java compatibility).
//!
//! Records without a key have no fixed partition in Kafka (the Java client sticks to one
//! per batch, librdkafka picks at random); ferrymq spreads them round-robin.

/// Kafka's `Utils.murmur2`, as an unsigned value (`as i32` gives Java's `int`).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ len;
    let mut chunks = data.chunks_exact(4);
    for chunk in chunks.by_ref() {
        let mut k = u32::from_le_bytes(<[u8; 4]>::try_from(chunk).unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition a Kafka producer with the default (Java) partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::cast_possible_wrap, reason = "Java's int is the expected form")]
    fn murmur2_matches_kafkas_utils_test_vectors() {
        let cases: [(&[u8], i32); 7] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (b"", 275_646_681),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input) as i32, expected, "{input:?}");
        }
    }

    #[test]
    fn murmur2_matches_librdkafkas_unit_test_vectors() {
        assert_eq!(murmur2(b"kafka"), 0xd067_cf64);
        assert_eq!(murmur2(b"giberish123456789"), 0x8f55_2b0c);
    }

    #[test]
    fn partitions_clear_the_sign_bit_before_the_modulo() {
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        for partitions in 1..20 {
            assert!(partition_for_key(b"21", partitions) < partitions);
        }
        assert_eq!(partition_for_key(b"x", 0), 0, "never divides by zero");
    }
}
