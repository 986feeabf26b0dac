//! Who a session belongs to.

use std::fmt;

/// An authenticated user: the name sessions and tasks are owned by, and the
/// groups the user is a member of.
///
/// ```
/// use tower_cis::Principal;
/// let admin = Principal::new("Administrator@VSPHERE.LOCAL")
///     .with_groups(["vsphere.local\\Administrators"]);
/// assert!(admin.is_member_of("vsphere.local\\Administrators"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    name: Box<str>,
    groups: Box<[Box<str>]>,
}

impl Principal {
    /// A principal with no groups.
    pub fn new(name: impl Into<Box<str>>) -> Self {
        Principal { name: name.into(), groups: Box::default() }
    }

    /// The same principal with these groups.
    pub fn with_groups<I, G>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = G>,
        G: Into<Box<str>>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The user name, as it is reported in `SessionInfo.user`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The groups the user is a member of.
    pub fn groups(&self) -> impl ExactSizeIterator<Item = &str> {
        self.groups.iter().map(|g| &**g)
    }

    /// Whether the user is a member of `group` (exact match).
    pub fn is_member_of(&self, group: &str) -> bool {
        self.groups.iter().any(|g| &**g == group)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal").field("name", &self.name).field("groups", &self.groups).finish()
    }
}
