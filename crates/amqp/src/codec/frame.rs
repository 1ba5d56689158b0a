//! Frame splitting: the outer envelope of everything after the protocol header.
//!
//! ```text
//! +------+---------+----------+-----------------+-----------+
//! | type | channel |   size   |     payload     | frame-end |
//! |  u8  |   u16   |   u32    |   size octets   |   0xCE    |
//! +------+---------+----------+-----------------+-----------+
//! type: 1 method, 2 content header, 3 content body, 8 heartbeat
//! ```
//! The size is checked against the negotiated `frame_max` as soon as the 7-byte header is
//! in, before any of the payload is buffered, so a peer cannot make the broker allocate more
//! than one frame's worth. As RabbitMQ does, a payload of up to `frame_max` bytes is
//! tolerated (some clients count the 8 envelope bytes, some do not).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of envelope around a payload (7 header + 1 frame-end).
pub const FRAME_OVERHEAD: usize = 8;
/// Header length: what must be buffered before the payload size is known.
pub const HEADER_LEN: usize = 7;
pub const FRAME_END: u8 = 0xCE;
/// The frame_max in force before connection.tune-ok (the spec's minimum).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// The kind of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Method = 1,
    Header = 2,
    Body = 3,
    Heartbeat = 8,
}

impl FrameKind {
    fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Method),
            2 => Some(Self::Header),
            3 => Some(Self::Body),
            8 => Some(Self::Heartbeat),
            _ => None,
        }
    }
}

/// One frame with its payload as a zero-copy view of the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpFrame {
    pub kind: FrameKind,
    pub channel: u16,
    pub payload: Bytes,
}

/// Why bytes from the peer are not a frame. Each is a 501 FRAME_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("type {kind}, all octets = <<>>: {{frame_too_large,{size},{max}}}")]
    TooLarge { kind: u8, size: u32, max: u32 },
    #[error("type {kind}: {{invalid_frame_end_marker,{found}}}")]
    BadFrameEnd { kind: u8, found: u8 },
    #[error("type {kind}: unknown_frame")]
    UnknownType { kind: u8 },
}

impl AmqpFrame {
    /// Splits one frame off the front of `buf`. `Ok(None)` means more bytes are needed
    /// (and, once the header is in, `buf` has been reserved for the whole frame).
    pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Self>, FrameError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let kind_byte = header[0];
        let channel = u16::from_be_bytes([header[1], header[2]]);
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        if frame_max != 0 && size > frame_max {
            return Err(FrameError::TooLarge {
                kind: kind_byte,
                size,
                max: frame_max.saturating_sub(8),
            });
        }
        let kind =
            FrameKind::from_u8(kind_byte).ok_or(FrameError::UnknownType { kind: kind_byte })?;
        // `size <= frame_max <= u32::MAX` and usize is at least 32 bits on supported targets.
        let total = HEADER_LEN + size as usize + 1;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let end = buf.get(total - 1).copied().unwrap_or(0);
        if end != FRAME_END {
            return Err(FrameError::BadFrameEnd {
                kind: kind_byte,
                found: end,
            });
        }
        let mut frame = buf.split_to(total).freeze();
        frame.advance(HEADER_LEN);
        frame.truncate(size as usize);
        Ok(Some(Self {
            kind,
            channel,
            payload: frame,
        }))
    }

    /// Writes a frame around `payload`.
    pub fn encode(kind: FrameKind, channel: u16, payload: &[u8], out: &mut BytesMut) {
        out.reserve(payload.len() + FRAME_OVERHEAD);
        out.put_u8(kind as u8);
        out.put_u16(channel);
        out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        out.put_slice(payload);
        out.put_u8(FRAME_END);
    }

    /// A heartbeat frame.
    pub fn encode_heartbeat(out: &mut BytesMut) {
        out.put_slice(&[8, 0, 0, 0, 0, 0, 0, FRAME_END]);
    }
}

/// Starts a frame whose payload the caller writes next; returns the offset to patch the
/// size at with [`finish_frame`].
pub fn begin_frame(kind: FrameKind, channel: u16, out: &mut BytesMut) -> usize {
    out.put_u8(kind as u8);
    out.put_u16(channel);
    let at = out.len();
    out.put_u32(0);
    at
}

/// Patches the size of a frame begun with [`begin_frame`] and writes its frame-end.
pub fn finish_frame(size_at: usize, out: &mut BytesMut) {
    let size = out.len() - size_at - 4;
    if let Some(slot) = out.get_mut(size_at..size_at + 4) {
        slot.copy_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.put_u8(FRAME_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&channel.to_be_bytes());
        v.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        v.extend_from_slice(payload);
        v.push(FRAME_END);
        v
    }

    #[test]
    fn round_trip_and_back_to_back() {
        let mut out = BytesMut::new();
        AmqpFrame::encode(FrameKind::Method, 3, b"abc", &mut out);
        AmqpFrame::encode_heartbeat(&mut out);
        let frame = AmqpFrame::decode(&mut out, 4096).unwrap().unwrap();
        assert_eq!(frame.kind, FrameKind::Method);
        assert_eq!(frame.channel, 3);
        assert_eq!(&frame.payload[..], b"abc");
        let hb = AmqpFrame::decode(&mut out, 4096).unwrap().unwrap();
        assert_eq!(hb.kind, FrameKind::Heartbeat);
        assert!(out.is_empty());
    }

    #[test]
    fn every_prefix_is_incomplete_not_an_error() {
        let bytes = frame_bytes(3, 1, b"hello body");
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(AmqpFrame::decode(&mut buf, 4096), Ok(None), "prefix {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn oversized_frames_fail_from_the_header_alone() {
        // Only the 7 header bytes are present: the size is refused before any payload.
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0x7f, 0xff, 0xff, 0xff][..]);
        let err = AmqpFrame::decode(&mut buf, 131_072).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                kind: 1,
                size: 0x7fff_ffff,
                max: 131_064
            }
        );
        assert!(
            buf.capacity() < 1 << 20,
            "nothing was reserved for the claimed size"
        );
        // frame_max itself is tolerated, as RabbitMQ tolerates it.
        let at_limit = frame_bytes(3, 1, &vec![0u8; 4096]);
        let mut buf = BytesMut::from(&at_limit[..]);
        assert!(AmqpFrame::decode(&mut buf, 4096).unwrap().is_some());
        let over = frame_bytes(3, 1, &vec![0u8; 4097]);
        assert!(AmqpFrame::decode(&mut BytesMut::from(&over[..]), 4096).is_err());
    }

    #[test]
    fn bad_frame_end_and_unknown_types_are_errors() {
        let mut bytes = frame_bytes(1, 0, b"x");
        *bytes.last_mut().unwrap() = 0;
        assert_eq!(
            AmqpFrame::decode(&mut BytesMut::from(&bytes[..]), 4096),
            Err(FrameError::BadFrameEnd { kind: 1, found: 0 })
        );
        let unknown = frame_bytes(9, 0, b"");
        assert_eq!(
            AmqpFrame::decode(&mut BytesMut::from(&unknown[..]), 4096),
            Err(FrameError::UnknownType { kind: 9 })
        );
    }

    #[test]
    fn begin_and_finish_patch_the_size() {
        let mut out = BytesMut::new();
        let at = begin_frame(FrameKind::Body, 7, &mut out);
        out.extend_from_slice(b"12345");
        finish_frame(at, &mut out);
        assert_eq!(&out[..], &frame_bytes(3, 7, b"12345")[..]);
    }
}
