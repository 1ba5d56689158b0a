//! ferrymq-amqp: the AMQP 0-9-1 frontend.
