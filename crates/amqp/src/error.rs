//! AMQP reply codes and the mapping from core errors to them.
//!
//! Soft errors close the channel (`channel.close`), hard errors the connection
//! (`connection.close`), as the 0-9-1 spec and RabbitMQ classify them. The reply text is
//! RabbitMQ's: the code's name, ` - `, then the explanation.

use ferrymq_core::Error as CoreError;

/// AMQP 0-9-1 reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCode {
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    pub fn name(self) -> &'static str {
        match self {
            Self::ContentTooLarge => "CONTENT_TOO_LARGE",
            Self::NoRoute => "NO_ROUTE",
            Self::NoConsumers => "NO_CONSUMERS",
            Self::ConnectionForced => "CONNECTION_FORCED",
            Self::InvalidPath => "INVALID_PATH",
            Self::AccessRefused => "ACCESS_REFUSED",
            Self::NotFound => "NOT_FOUND",
            Self::ResourceLocked => "RESOURCE_LOCKED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::FrameError => "FRAME_ERROR",
            Self::SyntaxError => "SYNTAX_ERROR",
            Self::CommandInvalid => "COMMAND_INVALID",
            Self::ChannelError => "CHANNEL_ERROR",
            Self::UnexpectedFrame => "UNEXPECTED_FRAME",
            Self::ResourceError => "RESOURCE_ERROR",
            Self::NotAllowed => "NOT_ALLOWED",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the whole connection.
    pub fn is_hard(self) -> bool {
        !matches!(
            self,
            Self::ContentTooLarge
                | Self::NoRoute
                | Self::NoConsumers
                | Self::AccessRefused
                | Self::NotFound
                | Self::ResourceLocked
                | Self::PreconditionFailed
        )
    }

    pub fn code(self) -> u16 {
        self as u16
    }
}

/// An error to report to the client, with the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} - {text}", code.name())]
pub struct AmqpError {
    pub code: ReplyCode,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Names the method the error answers.
    pub fn on(mut self, (class_id, method_id): (u16, u16)) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// The reply text as sent: `CODE_NAME - explanation`, cut to a short string's limit.
    pub fn reply_text(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 255 {
            let mut cut = 255;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }
}

impl From<CoreError> for AmqpError {
    fn from(error: CoreError) -> Self {
        let code = match &error {
            CoreError::NotFound { .. } => ReplyCode::NotFound,
            CoreError::Inequivalent { .. }
            | CoreError::InUse { .. }
            | CoreError::NotEmpty { .. }
            | CoreError::InvalidArgument { .. }
            | CoreError::InvalidBinding { .. }
            | CoreError::PreconditionFailed { .. }
            | CoreError::NameInUse { .. }
            | CoreError::QueueLimit { .. }
            | CoreError::InvalidProperty(_) => ReplyCode::PreconditionFailed,
            CoreError::ReservedName { .. }
            | CoreError::ExclusiveConsumer { .. }
            | CoreError::AccessRefused { .. } => ReplyCode::AccessRefused,
            CoreError::ResourceLocked { .. } => ReplyCode::ResourceLocked,
            CoreError::UnknownExchangeType { .. } => ReplyCode::CommandInvalid,
            CoreError::DuplicateConsumerTag { .. }
            | CoreError::UnknownVhost { .. }
            | CoreError::ConnectionLimit { .. }
            | CoreError::NodeConnectionLimit { .. }
            | CoreError::VhostAccessRefused { .. } => ReplyCode::NotAllowed,
            CoreError::Unsupported { .. } => ReplyCode::NotImplemented,
            // Storage and internal failures, and variants of areas AMQP does not touch.
            _ => ReplyCode::InternalError,
        };
        let text = match &error {
            CoreError::UnknownVhost { vhost } => format!("vhost {vhost} not found"),
            other => other.to_string(),
        };
        Self::new(code, text)
    }
}

/// Shorthand for a channel- or connection-level failure of a handler.
pub type AmqpResult<T> = Result<T, AmqpError>;

#[cfg(test)]
mod tests {
    use ferrymq_core::ResourceKind;

    use super::*;

    #[test]
    fn core_errors_map_to_rabbitmq_codes_and_texts() {
        let err = AmqpError::from(CoreError::NotFound {
            kind: ResourceKind::Queue,
            name: "q".into(),
            vhost: "/".into(),
        });
        assert_eq!(err.code, ReplyCode::NotFound);
        assert_eq!(err.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!err.code.is_hard());
        let err = AmqpError::from(CoreError::UnknownVhost { vhost: "v".into() });
        assert_eq!(err.reply_text(), "NOT_ALLOWED - vhost v not found");
        assert!(err.code.is_hard());
        assert!(ReplyCode::NotImplemented.is_hard());
        assert!(!ReplyCode::AccessRefused.is_hard());
    }

    #[test]
    fn reply_text_fits_a_short_string() {
        let err = AmqpError::new(ReplyCode::NotFound, "é".repeat(300));
        let text = err.reply_text();
        assert!(text.len() <= 255);
        assert!(text.starts_with("NOT_FOUND - "));
    }
}
