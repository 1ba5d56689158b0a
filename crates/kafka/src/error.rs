//! Kafka error codes, and the mapping from core errors to them (the only place it happens).

use ferrymq_core::Error;
use ferrymq_core::group::GroupError;
use ferrymq_core::stream::producer::SequenceError;

/// The error codes ferrymq sends, named as in Kafka and taken from kafka-protocol's table.
pub mod code {
    use kafka_protocol::ResponseError as E;

    pub const NONE: i16 = 0;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = E::UnsupportedSaslMechanism.code();
    pub const ILLEGAL_SASL_STATE: i16 = E::IllegalSaslState.code();
    pub const SASL_AUTHENTICATION_FAILED: i16 = E::SaslAuthenticationFailed.code();
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = E::ClusterAuthorizationFailed.code();
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = E::TopicAuthorizationFailed.code();
    pub const GROUP_AUTHORIZATION_FAILED: i16 = E::GroupAuthorizationFailed.code();
    pub const UNACCEPTABLE_CREDENTIAL: i16 = E::UnacceptableCredential.code();
    pub const DUPLICATE_RESOURCE: i16 = E::DuplicateResource.code();
    pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
    pub const OFFSET_OUT_OF_RANGE: i16 = E::OffsetOutOfRange.code();
    pub const CORRUPT_MESSAGE: i16 = E::CorruptMessage.code();
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = E::UnknownTopicOrPartition.code();
    pub const REQUEST_TIMED_OUT: i16 = E::RequestTimedOut.code();
    pub const MESSAGE_TOO_LARGE: i16 = E::MessageTooLarge.code();
    pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
    pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
    pub const INVALID_TOPIC_EXCEPTION: i16 = E::InvalidTopicException.code();
    pub const NOT_ENOUGH_REPLICAS: i16 = E::NotEnoughReplicas.code();
    pub const INVALID_REQUIRED_ACKS: i16 = E::InvalidRequiredAcks.code();
    pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub const INVALID_TIMESTAMP: i16 = E::InvalidTimestamp.code();
    pub const UNSUPPORTED_VERSION: i16 = E::UnsupportedVersion.code();
    pub const TOPIC_ALREADY_EXISTS: i16 = E::TopicAlreadyExists.code();
    pub const INVALID_PARTITIONS: i16 = E::InvalidPartitions.code();
    pub const INVALID_REPLICATION_FACTOR: i16 = E::InvalidReplicationFactor.code();
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = E::InvalidReplicaAssignment.code();
    pub const INVALID_CONFIG: i16 = E::InvalidConfig.code();
    pub const INVALID_REQUEST: i16 = E::InvalidRequest.code();
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = E::OutOfOrderSequenceNumber.code();
    pub const INVALID_PRODUCER_EPOCH: i16 = E::InvalidProducerEpoch.code();
    pub const INVALID_TXN_STATE: i16 = E::InvalidTxnState.code();
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
        E::TransactionalIdAuthorizationFailed.code();
    pub const KAFKA_STORAGE_ERROR: i16 = E::KafkaStorageError.code();
    pub const UNKNOWN_PRODUCER_ID: i16 = E::UnknownProducerId.code();
    pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = E::FetchSessionIdNotFound.code();
    pub const FENCED_LEADER_EPOCH: i16 = E::FencedLeaderEpoch.code();
    pub const UNKNOWN_LEADER_EPOCH: i16 = E::UnknownLeaderEpoch.code();
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = E::UnsupportedCompressionType.code();
    pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = E::GroupSubscribedToTopic.code();
    pub const INVALID_RECORD: i16 = E::InvalidRecord.code();
    pub const RESOURCE_NOT_FOUND: i16 = E::ResourceNotFound.code();
    pub const UNKNOWN_TOPIC_ID: i16 = E::UnknownTopicId.code();
    pub const POLICY_VIOLATION: i16 = E::PolicyViolation.code();
    pub const MISMATCHED_ENDPOINT_TYPE: i16 = E::MismatchedEndpointType.code();
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = E::InvalidProducerIdMapping.code();
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = E::InvalidTransactionTimeout.code();
    pub const CONCURRENT_TRANSACTIONS: i16 = E::ConcurrentTransactions.code();
    pub const OPERATION_NOT_ATTEMPTED: i16 = E::OperationNotAttempted.code();
    pub const PRODUCER_FENCED: i16 = E::ProducerFenced.code();
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = E::TransactionalIdNotFound.code();
}

/// The Kafka error code for a transaction coordinator error. A fenced producer gets
/// PRODUCER_FENCED where the API version knows it (Kafka sends it from InitProducerId v4,
/// AddPartitionsToTxn v2, AddOffsetsToTxn v2, EndTxn v2, TxnOffsetCommit v3 on), else
/// INVALID_PRODUCER_EPOCH.
pub fn from_txn(error: &ferrymq_core::transactions::TxnError, fenced_code_from: bool) -> i16 {
    use ferrymq_core::transactions::TxnError as T;
    match error {
        T::InvalidTimeout { .. } => code::INVALID_TRANSACTION_TIMEOUT,
        T::Fenced if fenced_code_from => code::PRODUCER_FENCED,
        T::Fenced => code::INVALID_PRODUCER_EPOCH,
        T::InvalidMapping => code::INVALID_PRODUCER_ID_MAPPING,
        T::ConcurrentTransactions => code::CONCURRENT_TRANSACTIONS,
        T::InvalidState { .. } => code::INVALID_TXN_STATE,
        T::UnknownPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        T::NotAttempted => code::OPERATION_NOT_ATTEMPTED,
        T::Storage { .. } => code::COORDINATOR_NOT_AVAILABLE,
    }
}

/// The Kafka error code for a group error.
pub fn from_group(error: &GroupError) -> i16 {
    match error {
        GroupError::UnknownMember { .. } => code::UNKNOWN_MEMBER_ID,
        GroupError::IllegalGeneration { .. } => code::ILLEGAL_GENERATION,
        GroupError::RebalanceInProgress { .. } => code::REBALANCE_IN_PROGRESS,
        GroupError::InconsistentProtocol { .. } => code::INCONSISTENT_GROUP_PROTOCOL,
        GroupError::InvalidSessionTimeout { .. } => code::INVALID_SESSION_TIMEOUT,
        GroupError::InvalidGroupId { .. } => code::INVALID_GROUP_ID,
        GroupError::MemberIdRequired { .. } => code::MEMBER_ID_REQUIRED,
        GroupError::FencedInstance { .. } => code::FENCED_INSTANCE_ID,
        GroupError::NotEmpty { .. } => code::NON_EMPTY_GROUP,
        GroupError::NotFound { .. } => code::GROUP_ID_NOT_FOUND,
        GroupError::MetadataTooLarge { .. } => code::OFFSET_METADATA_TOO_LARGE,
        GroupError::SubscribedToTopic { .. } => code::GROUP_SUBSCRIBED_TO_TOPIC,
        GroupError::ShuttingDown | GroupError::Unstorable { .. } => code::COORDINATOR_NOT_AVAILABLE,
    }
}

/// The Kafka error code for a core error, and the message to send where the response
/// carries one.
pub fn from_core(error: &Error) -> (i16, String) {
    let c = match error {
        Error::StreamNotFound { .. } => code::UNKNOWN_TOPIC_OR_PARTITION,
        Error::StreamExists { .. } | Error::NameInUse { .. } => code::TOPIC_ALREADY_EXISTS,
        Error::InvalidStreamName { .. } => code::INVALID_TOPIC_EXCEPTION,
        Error::QueueLimit { .. } => code::POLICY_VIOLATION,
        Error::InvalidPartitionCount { .. } => code::INVALID_PARTITIONS,
        Error::BatchTooLarge { .. } => code::MESSAGE_TOO_LARGE,
        Error::Batch(e) if e.is_corrupt() => code::CORRUPT_MESSAGE,
        Error::Batch(_) => code::INVALID_RECORD,
        Error::CorruptBatch { .. } => code::CORRUPT_MESSAGE,
        Error::Sequence(SequenceError::OutOfOrder { .. }) => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        Error::Sequence(SequenceError::Fenced { .. }) => code::INVALID_PRODUCER_EPOCH,
        Error::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        Error::Storage { .. }
        | Error::PartitionLog { .. }
        | Error::NotDurable { .. }
        | Error::DataDir { .. } => code::KAFKA_STORAGE_ERROR,
        Error::Group(e) => from_group(e),
        Error::CorruptDefinition { .. } | Error::UnknownVhost { .. } | Error::Internal { .. } => {
            code::UNKNOWN_SERVER_ERROR
        }
        // Variants other frontends' areas add later map to the generic code.
        #[allow(unreachable_patterns, reason = "core's Error grows with other areas")]
        _ => code::UNKNOWN_SERVER_ERROR,
    };
    (c, error.to_string())
}
