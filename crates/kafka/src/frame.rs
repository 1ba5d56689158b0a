//! Kafka's length-prefixed framing, with the size limit checked before anything is buffered.
//!
//! ```text
//! +-------------------+------------------------------------------+
//! | size: int32 (BE)  | size bytes: request header + request body |
//! +-------------------+------------------------------------------+
//! ```
//! Responses use the same framing. `size` counts the bytes after the prefix only.
//!
//! # Invariants
//! - [`decode_size`] refuses a negative size and one above the configured maximum
//!   (Kafka's `socket.request.max.bytes`) from the 4-byte prefix alone: the caller reserves
//!   buffer space only for a size this function accepted.

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a frame prefix was refused. Either way the connection is closed: the stream can no
/// longer be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("request size {size} exceeds the maximum of {max} bytes (kafka.max_request_bytes)")]
    Oversized { size: u32, max: u32 },
    #[error("negative request size {size}")]
    Negative { size: i32 },
}

/// Reads the size prefix at the start of `buf`.
///
/// Returns `Ok(None)` while fewer than [`PREFIX_LEN`] bytes are available, otherwise the
/// payload length that follows the prefix.
pub fn decode_size(buf: &[u8], max: u32) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    let Ok(size) = u32::try_from(size) else {
        return Err(FrameError::Negative { size });
    };
    if size > max {
        return Err(FrameError::Oversized { size, max });
    }
    // u32 always fits in usize on the 32- and 64-bit targets ferrymq supports.
    Ok(Some(size as usize))
}

/// Appends `payload` to `out` with its size prefix.
///
/// `payload` longer than `i32::MAX` bytes cannot be framed; the caller never produces one
/// (responses are bounded by the fetch limits they answer).
pub fn encode(payload: &[u8], out: &mut bytes::BytesMut) -> Result<(), FrameError> {
    let size = i32::try_from(payload.len()).map_err(|_| FrameError::Oversized {
        size: u32::MAX,
        max: i32::MAX.unsigned_abs(),
    })?;
    out.reserve(PREFIX_LEN + payload.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_whole_prefix() {
        for len in 0..PREFIX_LEN {
            assert_eq!(decode_size(&[0, 0, 0, 9][..len], 100), Ok(None));
        }
        assert_eq!(decode_size(&[0, 0, 0, 9], 100), Ok(Some(9)));
        assert_eq!(decode_size(&[0, 0, 1, 0, 0xff], 1000), Ok(Some(256)));
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_from_the_prefix_alone() {
        assert_eq!(
            decode_size(&[0x7f, 0xff, 0xff, 0xff], 100 << 20),
            Err(FrameError::Oversized {
                size: i32::MAX.unsigned_abs(),
                max: 100 << 20
            })
        );
        assert_eq!(
            decode_size(&[0, 0, 0, 101], 100),
            Err(FrameError::Oversized {
                size: 101,
                max: 100
            })
        );
        assert_eq!(decode_size(&[0, 0, 0, 100], 100), Ok(Some(100)));
        assert_eq!(
            decode_size(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::Negative { size: -1 })
        );
    }

    #[test]
    fn encode_prefixes_the_size() {
        let mut out = bytes::BytesMut::new();
        encode(b"abc", &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(decode_size(&out, 3), Ok(Some(3)));
    }
}
