//! A virtual host: one namespace of exchanges, queues and streams.

/// One namespace. Exchanges, queues and streams of different vhosts never see each other.
#[derive(Debug)]
pub struct VHost {
    name: String,
}

impl VHost {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
