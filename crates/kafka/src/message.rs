//! Whole requests and responses: a header plus one of the bodies ferrymq serves, decoded and
//! encoded with kafka-protocol.
//!
//! ```text
//! frame payload -> header::decode -> versions::supports? -> bounds::walk -> Body::decode
//! Response { correlation id, api, version, ResponseBody } -> header + body.encode
//! ```
//!
//! # Invariants
//! - A body is decoded only at a version [`crate::versions`] lists and only after
//!   [`crate::bounds::walk`] accepted it, so kafka-protocol never reserves memory for lengths
//!   the frame cannot hold.
//! - Responses set no tagged field unless it holds a non-default value (kafka-protocol omits
//!   defaults): librdkafka before 2.2 mis-skips tagged fields that carry data.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::bounds;
use crate::header::{self, HeaderError, KafkaRequestHeader};
use crate::versions;

/// Why a request frame could not become a [`KafkaRequest`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("{api:?} v{version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api:?} v{version} body (correlation id {correlation_id}): {reason}")]
    Body {
        header: KafkaRequestHeader,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

macro_rules! apis {
    ($($name:ident: $req:ident => $resp:ident,)*) => {
        /// A decoded request body.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestBody {
            $($name($req),)*
        }

        /// A response body, encoded at the request's version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ResponseBody {
            $($name($resp),)*
        }

        impl RequestBody {
            fn decode(api: ApiKey, version: i16, body: &mut Bytes) -> Option<Result<Self, String>> {
                Some(match api {
                    $(ApiKey::$name => $req::decode(body, version).map(Self::$name).map_err(|e| e.to_string()),)*
                    _ => return None,
                })
            }

            /// The API this body belongs to.
            pub fn api(&self) -> ApiKey {
                match self {
                    $(Self::$name(_) => ApiKey::$name,)*
                }
            }
        }

        impl ResponseBody {
            fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), String> {
                match self {
                    // kafka-protocol's errors are `anyhow`; they are rendered so that type stays private.
            $(Self::$name(body) => body.encode(out, version).map_err(|e| e.to_string()),)*
                }
            }

            /// The encoded size at `version`, to reserve the buffer once.
            fn size(&self, version: i16) -> Option<usize> {
                match self {
                    $(Self::$name(body) => body.compute_size(version).ok(),)*
                }
            }

            /// The API this body answers.
            pub fn api(&self) -> ApiKey {
                match self {
                    $(Self::$name(_) => ApiKey::$name,)*
                }
            }
        }
    };
}

apis! {
    Produce: ProduceRequest => ProduceResponse,
    Fetch: FetchRequest => FetchResponse,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse,
    Metadata: MetadataRequest => MetadataResponse,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse,
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse,
    JoinGroup: JoinGroupRequest => JoinGroupResponse,
    Heartbeat: HeartbeatRequest => HeartbeatResponse,
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse,
    SyncGroup: SyncGroupRequest => SyncGroupResponse,
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse,
    ListGroups: ListGroupsRequest => ListGroupsResponse,
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse,
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse,
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse,
    OffsetForLeaderEpoch: OffsetForLeaderEpochRequest => OffsetForLeaderEpochResponse,
    AddPartitionsToTxn: AddPartitionsToTxnRequest => AddPartitionsToTxnResponse,
    AddOffsetsToTxn: AddOffsetsToTxnRequest => AddOffsetsToTxnResponse,
    EndTxn: EndTxnRequest => EndTxnResponse,
    TxnOffsetCommit: TxnOffsetCommitRequest => TxnOffsetCommitResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse,
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse,
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    OffsetDelete: OffsetDeleteRequest => OffsetDeleteResponse,
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse,
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse,
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse,
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse,
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse,
    CreateAcls: CreateAclsRequest => CreateAclsResponse,
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse,
    DescribeTransactions: DescribeTransactionsRequest => DescribeTransactionsResponse,
    ListTransactions: ListTransactionsRequest => ListTransactionsResponse,
}

/// A request as the connection hands it to a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaRequest {
    pub header: KafkaRequestHeader,
    pub body: RequestBody,
}

impl KafkaRequest {
    /// Decodes one frame payload (without its size prefix).
    pub fn decode(mut frame: Bytes) -> Result<Self, DecodeError> {
        let header = header::decode(&mut frame)?;
        let version = header.api_version;
        let correlation_id = header.correlation_id;
        let api = ApiKey::try_from(header.api_key).map_err(|()| HeaderError::UnknownApiKey {
            api_key: header.api_key,
            correlation_id,
        })?;
        if !versions::supports(api, version) {
            return Err(DecodeError::UnsupportedVersion {
                api,
                version,
                correlation_id,
            });
        }
        let body_error = |header: &KafkaRequestHeader, reason: String| DecodeError::Body {
            header: header.clone(),
            api,
            version,
            correlation_id,
            reason,
        };
        let walked = bounds::walk(header.api_key, version, &frame)
            .map_err(|e| body_error(&header, e.to_string()))?;
        let len = frame.len();
        let body = RequestBody::decode(api, version, &mut frame)
            .ok_or_else(|| DecodeError::UnsupportedVersion {
                api,
                version,
                correlation_id,
            })?
            .map_err(|reason| body_error(&header, reason))?;
        // The walk vouches only for the layout it followed: if the decoder read a different
        // amount, the two disagree about this request and it is refused.
        let decoded = len - frame.len();
        if decoded != walked {
            let reason = format!("layout check read {walked} bytes, decoder {decoded}");
            return Err(body_error(&header, reason));
        }
        Ok(Self { header, body })
    }
}

/// A response ready to be framed.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaResponse {
    pub correlation_id: i32,
    pub version: i16,
    pub body: ResponseBody,
}

impl KafkaResponse {
    /// Appends the size-prefixed response frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), String> {
        out.reserve(self.body.size(self.version).unwrap_or(0) + 16);
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let api = self.body.api();
        header::encode_response(
            self.correlation_id,
            header::response_header_version(api, self.version),
            out,
        );
        self.body.encode(out, self.version)?;
        let size = i32::try_from(out.len() - start - 4)
            .map_err(|_| format!("{api:?} response larger than 2 GiB"))?;
        if let Some(prefix) = out.get_mut(start..start + 4) {
            prefix.copy_from_slice(&size.to_be_bytes());
        }
        Ok(())
    }
}
