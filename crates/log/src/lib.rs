//! ferrymq-log: the segmented commit log under every ferrymq stream, partition and journal.
