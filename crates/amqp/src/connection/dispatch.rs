//! Frames of an open connection: routing to channel 0 or a channel, opening and closing
//! channels, turning handler errors into channel.close or connection.close, and the
//! consumer acknowledgement timeout.

use std::collections::HashMap;
use std::time::Duration;

use amq_protocol::protocol::{AMQPClass, channel, connection};
use tokio::time::Instant;

use super::Connection;
use super::handshake::Tuned;
use super::session::Session;
use crate::channel::{Channel, ChannelState};
use crate::codec::frame::{AmqpFrame, FrameKind};
use crate::codec::method::{MethodError, decode_method, peek_ids};
use crate::error::{AmqpError, ReplyCode};

impl Connection {
    pub(super) fn on_frame(
        &mut self,
        s: &mut Session,
        channels: &mut HashMap<u16, Channel>,
        tuned: Tuned,
        frame: AmqpFrame,
    ) -> Result<(), Flow> {
        if frame.channel == 0 {
            return self.on_channel_zero(s, &frame);
        }
        let id = frame.channel;
        if frame.kind == FrameKind::Heartbeat {
            return Err(Flow::Close(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!("heartbeat frame on channel {id}"),
            )));
        }
        let Some(ch) = channels.get_mut(&id) else {
            return self.open_channel(s, channels, tuned, &frame);
        };
        if frame.kind == FrameKind::Method {
            match peek_ids(&frame.payload) {
                // channel.close
                Some((20, 40)) => {
                    if ch.state == ChannelState::Open {
                        ch.cleanup(s);
                    }
                    s.send(
                        id,
                        &AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                    channels.remove(&id);
                    s.registration.connection().remove_channel(id);
                    return Ok(());
                }
                // channel.close-ok
                Some((20, 41)) => {
                    if ch.state == ChannelState::Closing {
                        channels.remove(&id);
                        s.registration.connection().remove_channel(id);
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if ch.state == ChannelState::Closing {
            return Ok(());
        }
        match ch.handle_frame(s, frame) {
            Ok(()) => Ok(()),
            Err(error) if error.code.is_hard() => Err(Flow::Close(error)),
            Err(error) => {
                fail_channel(s, ch, &error);
                Ok(())
            }
        }
    }

    fn open_channel(
        &mut self,
        s: &mut Session,
        channels: &mut HashMap<u16, Channel>,
        tuned: Tuned,
        frame: &AmqpFrame,
    ) -> Result<(), Flow> {
        let id = frame.channel;
        let is_open = frame.kind == FrameKind::Method && peek_ids(&frame.payload) == Some((20, 10));
        if !is_open {
            return Err(Flow::Close(
                AmqpError::new(ReplyCode::ChannelError, "expected 'channel.open'")
                    .on(peek_ids(&frame.payload).unwrap_or((0, 0))),
            ));
        }
        if let Err(e) = decode_method(&frame.payload) {
            return Err(Flow::Close(method_error(&frame.payload, &e)));
        }
        let max = usize::from(tuned.channel_max);
        if (tuned.channel_max != 0 && id > tuned.channel_max) || (max != 0 && channels.len() >= max)
        {
            return Err(Flow::Close(
                AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        channels.len(),
                        tuned.channel_max
                    ),
                )
                .on((20, 10)),
            ));
        }
        let channel = Channel::new(id, s);
        s.registration
            .connection()
            .add_channel(id, channel.shared.clone());
        channels.insert(id, channel);
        s.send(
            id,
            &AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        );
        Ok(())
    }

    fn on_channel_zero(&mut self, s: &mut Session, frame: &AmqpFrame) -> Result<(), Flow> {
        match frame.kind {
            FrameKind::Heartbeat => Ok(()),
            FrameKind::Header | FrameKind::Body => Err(Flow::Close(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "content frame on channel 0",
            ))),
            FrameKind::Method => match decode_method(&frame.payload) {
                Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    s.flush();
                    s.send(
                        0,
                        &AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    Err(Flow::ClientClosed)
                }
                Ok(AMQPClass::Connection(
                    connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
                )) => Ok(()),
                Ok(AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_))) => {
                    Err(Flow::Close(
                        AmqpError::new(
                            ReplyCode::NotAllowed,
                            "New secret was refused by one of the backends",
                        )
                        .on((10, 70)),
                    ))
                }
                Ok(other) => {
                    let ids = (other.get_amqp_class_id(), other.get_amqp_method_id());
                    Err(Flow::Close(
                        AmqpError::new(ReplyCode::CommandInvalid, "unexpected method on channel 0")
                            .on(ids),
                    ))
                }
                Err(e) => Err(Flow::Close(method_error(&frame.payload, &e))),
            },
        }
    }
}

/// Closes a channel for a soft error: cleanup now, channel.close out, close-ok awaited.
fn fail_channel(s: &mut Session, ch: &mut Channel, error: &AmqpError) {
    tracing::debug!(channel = ch.id, error = %error.reply_text(), "closing channel");
    ch.cleanup(s);
    ch.state = ChannelState::Closing;
    s.send(
        ch.id,
        &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: error.code.code(),
            reply_text: error.reply_text().into(),
            class_id: error.class_id,
            method_id: error.method_id,
        })),
    );
}

/// Closes channels whose oldest unacknowledged delivery is older than `timeout`.
pub(super) fn expire_unacked(
    s: &mut Session,
    channels: &mut HashMap<u16, Channel>,
    timeout: Duration,
) {
    let now = Instant::now();
    for ch in channels.values_mut() {
        if ch.state != ChannelState::Open {
            continue;
        }
        if ch
            .shared
            .oldest_unacked()
            .is_some_and(|at| now.saturating_duration_since(at) > timeout)
        {
            let error = AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "delivery acknowledgement on channel {} timed out. Timeout value used: {} ms. \
                     This timeout value can be configured, see consumers doc guide to learn more",
                    ch.id,
                    timeout.as_millis()
                ),
            );
            fail_channel(s, ch, &error);
        }
    }
}

/// What a frame did to the connection.
pub(super) enum Flow {
    ClientClosed,
    Close(AmqpError),
}

pub(super) fn method_error(payload: &[u8], error: &MethodError) -> AmqpError {
    let ids = peek_ids(payload).unwrap_or((0, 0));
    match error {
        MethodError::Unknown { .. } => {
            AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method").on(ids)
        }
        MethodError::Malformed { .. } => AmqpError::new(
            ReplyCode::FrameError,
            format!("cannot decode method {}.{}", ids.0, ids.1),
        )
        .on(ids),
    }
}

pub(super) fn cleanup(s: &mut Session, channels: &mut HashMap<u16, Channel>) {
    for (id, mut ch) in channels.drain() {
        ch.cleanup(s);
        s.registration.connection().remove_channel(id);
    }
    for queue in std::mem::take(&mut s.exclusive) {
        s.vhost.remove_queue(&queue);
    }
}
