//! ferrymq-kafka: the Kafka wire protocol frontend.
