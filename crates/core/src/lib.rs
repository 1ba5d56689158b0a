//! ferrymq-core: vhosts, exchanges, bindings, queues, streams, consumer groups and offsets.
