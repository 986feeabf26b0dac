//! Task ids in VMware's format: `<uuid>:<serviceId>`.

use std::fmt;
use std::sync::Arc;

use crate::RandomUnavailable;

/// The longest service id accepted in a task id.
pub const MAX_SERVICE_ID_LEN: usize = 256;

/// A task id, e.g. `8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.vcenter.vm`.
///
/// ```
/// use tower_cis::tasks::TaskId;
/// let id = TaskId::generate("com.vmware.vcenter.vm").unwrap();
/// assert!(id.as_str().ends_with(":com.vmware.vcenter.vm"));
/// assert_eq!(TaskId::parse(id.as_str()), Some(id.clone()));
/// assert_eq!(id.service(), "com.vmware.vcenter.vm");
/// assert!(TaskId::parse("not a task").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(Arc<str>);

impl TaskId {
    /// A fresh id for a task of `service`: a random (version 4) UUID from the
    /// operating system's CSPRNG, then `:` and the service id.
    pub fn generate(service: &str) -> Result<Self, RandomUnavailable> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| RandomUnavailable)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let text =
            format!("{}-{}-{}-{}-{}:{service}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
        Ok(TaskId(text.into()))
    }

    /// Parses `<uuid>:<serviceId>`: a lowercase hyphenated UUID and a service
    /// id of letters, digits, `.`, `_` and `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let (uuid, service) = text.split_once(':')?;
        let uuid_ok = uuid.len() == 36
            && uuid.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        (uuid_ok && is_service_id(service)).then(|| TaskId(text.into()))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The service id after the `:`.
    pub fn service(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, service)| service)
    }
}

/// Whether `text` is a plausible vAPI service id (`com.vmware.cis.tasks`).
pub(crate) fn is_service_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_SERVICE_ID_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

impl serde::Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}
