//! A message going out: its content header (reusing the publisher's property bytes when
//! the message is unchanged) and its body, split into frames no larger than `frame_max`.

use bytes::{BufMut, BytesMut};
use ferrymq_core::message::Message;

use super::frame::{FRAME_OVERHEAD, FrameKind, begin_frame, finish_frame};
use super::properties::encode_properties;

/// Writes the content header and body frames of `message` on `channel`.
pub fn put_content(out: &mut BytesMut, channel: u16, message: &Message, frame_max: u32) {
    let at = begin_frame(FrameKind::Header, channel, out);
    out.put_u16(60);
    out.put_u16(0);
    out.put_u64(message.body_size());
    match &message.encoded_properties {
        Some(raw) => out.put_slice(raw),
        None => encode_properties(&message.properties, out),
    }
    finish_frame(at, out);
    let chunk = if frame_max == 0 {
        usize::MAX
    } else {
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    };
    out.reserve(message.body.len() + FRAME_OVERHEAD * (message.body.len() / chunk + 1));
    for piece in message.body.chunks(chunk) {
        let at = begin_frame(FrameKind::Body, channel, out);
        out.put_slice(piece);
        finish_frame(at, out);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ferrymq_core::message::Properties;

    use super::*;
    use crate::codec::frame::AmqpFrame;
    use crate::codec::properties::ContentHeader;

    #[test]
    fn bodies_split_at_frame_max_and_raw_properties_are_reused() {
        let mut message = Message::new(
            "x",
            "k",
            Properties {
                content_type: Some("text/plain".into()),
                ..Properties::default()
            },
            Bytes::from(vec![7u8; 10_000]),
        );
        let mut out = BytesMut::new();
        put_content(&mut out, 3, &message, 4096);
        let header = AmqpFrame::decode(&mut out, 4096).unwrap().unwrap();
        assert_eq!(header.kind, FrameKind::Header);
        let decoded = ContentHeader::decode(&header.payload).unwrap();
        assert_eq!(decoded.body_size, 10_000);
        assert_eq!(decoded.properties, message.properties);
        let mut sizes = Vec::new();
        while let Some(frame) = AmqpFrame::decode(&mut out, 4096).unwrap() {
            assert_eq!(frame.kind, FrameKind::Body);
            assert!(frame.payload.iter().all(|b| *b == 7));
            sizes.push(frame.payload.len());
        }
        assert_eq!(sizes, [4088, 4088, 1824]);

        // Raw bytes win over the typed properties (they are what the publisher sent).
        message.encoded_properties = Some(decoded.raw.clone());
        message.body = Bytes::new();
        let mut out = BytesMut::new();
        put_content(&mut out, 3, &message, 4096);
        let header = AmqpFrame::decode(&mut out, 4096).unwrap().unwrap();
        assert_eq!(header.payload.slice(12..), decoded.raw);
        assert!(out.is_empty(), "an empty body has no body frame");
    }
}
