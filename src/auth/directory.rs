//! Local users with argon2id password hashes, loaded from code or from a
//! users file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHashString, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::basic::{MAX_PASSWORD_LEN, MAX_USER_LEN};
use crate::Principal;

/// The largest users file accepted, in bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The longest line of a users file, in bytes.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// The most users a directory holds.
const MAX_USERS: usize = 100_000;
/// The most groups one user is a member of.
const MAX_GROUPS: usize = 256;
/// The longest group name, in bytes.
const MAX_GROUP_LEN: usize = 256;
/// The longest PHC string accepted.
const MAX_PHC_LEN: usize = 1024;
/// The shortest salt and hash output accepted in a PHC string, in bytes.
const MIN_SALT_BYTES: usize = 8;
const MIN_OUTPUT_BYTES: usize = 16;

/// The cost of hashing one password with argon2id: memory in KiB, iterations
/// and lanes.
///
/// The default is OWASP's recommendation for argon2id, `m=19456` (19 MiB),
/// `t=2`, `p=1`: tens of milliseconds per login. Verification always uses the
/// cost recorded in the stored hash; this cost applies to new hashes and to
/// the decoy hash checked for unknown users, so it should match the cost of
/// the stored hashes.
///
/// ```
/// use tower_cis::auth::HashCost;
/// let cost = HashCost::default();
/// assert_eq!((cost.memory_kib(), cost.iterations(), cost.parallelism()), (19_456, 2, 1));
/// assert!(HashCost::new(64 * 1024, 3, 4).is_ok());
/// assert!(HashCost::new(0, 0, 0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashCost {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl HashCost {
    /// The most memory a hash may ask for: 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// The most iterations a hash may ask for.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes a hash may ask for.
    pub const MAX_PARALLELISM: u32 = 64;

    /// A cost of `memory_kib` KiB, `iterations` passes and `parallelism`
    /// lanes, checked against argon2's rules (memory at least 8 KiB per lane)
    /// and this crate's maxima, so that no hash can exhaust the server.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, DirectoryError> {
        let cost = HashCost { memory_kib, iterations, parallelism };
        cost.check().map_err(|detail| DirectoryError::new(DirectoryErrorKind::InvalidCost, None, detail))?;
        Ok(cost)
    }

    /// OWASP's argon2id recommendation, the default: 19 MiB, 2 iterations, 1 lane.
    pub const fn owasp() -> Self {
        HashCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }

    /// The cheapest cost argon2 allows (8 KiB, 1 iteration, 1 lane), so that
    /// test suites hash thousands of passwords per second. **Never use it in
    /// production**: it offers almost no protection to a stolen users file.
    pub const fn insecure_fast_for_tests() -> Self {
        HashCost { memory_kib: 8, iterations: 1, parallelism: 1 }
    }

    /// Memory per hash, in KiB.
    pub const fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Passes over the memory.
    pub const fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Lanes.
    pub const fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn check(&self) -> Result<(), String> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return Err(format!(
                "m={},t={},p={} exceeds the maximum m={},t={},p={}",
                self.memory_kib,
                self.iterations,
                self.parallelism,
                Self::MAX_MEMORY_KIB,
                Self::MAX_ITERATIONS,
                Self::MAX_PARALLELISM
            ));
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map(drop)
            .map_err(|error| format!("m={},t={},p={}: {error}", self.memory_kib, self.iterations, self.parallelism))
    }

    fn of(params: &Params) -> Self {
        HashCost { memory_kib: params.m_cost(), iterations: params.t_cost(), parallelism: params.p_cost() }
    }

    fn hasher(&self) -> Argon2<'static> {
        // Every constructor checks the cost, so the fallback is never taken.
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

impl Default for HashCost {
    fn default() -> Self {
        Self::owasp()
    }
}

/// Hashes `password` with argon2id at `cost` and a fresh random salt, as the
/// PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) that a users file or
/// [`UserDirectory::with_hashed_user`] takes.
///
/// ```
/// use tower_cis::auth::{HashCost, hash_password};
/// let phc = hash_password("VMware1!", HashCost::insecure_fast_for_tests()).unwrap();
/// assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
/// ```
pub fn hash_password(password: &str, cost: HashCost) -> Result<String, DirectoryError> {
    cost.check().map_err(|detail| DirectoryError::new(DirectoryErrorKind::InvalidCost, None, detail))?;
    if password.len() > MAX_PASSWORD_LEN {
        return Err(DirectoryError::new(
            DirectoryErrorKind::Hashing,
            None,
            format!("the password is longer than {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|error| {
        DirectoryError::new(DirectoryErrorKind::Hashing, None, format!("no random salt available: {error}"))
    })?;
    let salt = SaltString::encode_b64(&salt).map_err(hashing_failed)?;
    let hash = cost.hasher().hash_password(password.as_bytes(), &salt).map_err(hashing_failed)?;
    Ok(hash.to_string())
}

fn hashing_failed(error: argon2::password_hash::Error) -> DirectoryError {
    DirectoryError::new(DirectoryErrorKind::Hashing, None, error.to_string())
}

/// What went wrong building a [`UserDirectory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DirectoryErrorKind {
    /// The users file could not be read.
    Io,
    /// The users file or one of its lines is larger than allowed.
    TooLarge,
    /// A line is not `name:hash[:groups]`, or the file is not UTF-8.
    Syntax,
    /// A user name is empty, too long, or holds `:`, a control character or
    /// surrounding whitespace.
    InvalidName,
    /// A password hash is not an acceptable argon2id PHC string.
    InvalidHash,
    /// A group name is empty, too long or holds a control character, or a user
    /// has too many groups.
    InvalidGroup,
    /// Two users have the same name (compared case-insensitively).
    DuplicateUser,
    /// More users than a directory holds (100 000).
    TooManyUsers,
    /// A [`HashCost`] outside argon2's rules or this crate's maxima.
    InvalidCost,
    /// Hashing a password failed.
    Hashing,
}

/// An error building a [`UserDirectory`], naming the users-file line when
/// there is one. It never contains a password or a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryError {
    kind: DirectoryErrorKind,
    line: Option<usize>,
    detail: Cow<'static, str>,
}

impl DirectoryError {
    fn new(kind: DirectoryErrorKind, line: Option<usize>, detail: impl Into<Cow<'static, str>>) -> Self {
        DirectoryError { kind, line, detail: detail.into() }
    }

    fn at(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> DirectoryErrorKind {
        self.kind
    }

    /// The 1-based line of the users file, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "users file line {line}: ")?;
        }
        let what = match self.kind {
            DirectoryErrorKind::Io => "cannot read the users file",
            DirectoryErrorKind::TooLarge => "too large",
            DirectoryErrorKind::Syntax => "syntax error",
            DirectoryErrorKind::InvalidName => "invalid user name",
            DirectoryErrorKind::InvalidHash => "invalid password hash",
            DirectoryErrorKind::InvalidGroup => "invalid group",
            DirectoryErrorKind::DuplicateUser => "duplicate user",
            DirectoryErrorKind::TooManyUsers => "too many users",
            DirectoryErrorKind::InvalidCost => "invalid hash cost",
            DirectoryErrorKind::Hashing => "cannot hash the password",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for DirectoryError {}

#[derive(Clone)]
struct UserRecord {
    name: Box<str>,
    hash: PasswordHashString,
    groups: Box<[Box<str>]>,
}

/// Local users: names, argon2id password hashes and groups.
///
/// User names are looked up **case-insensitively** (after Unicode lowercasing),
/// as vCenter SSO treats `Administrator@vsphere.local` and
/// `administrator@VSPHERE.LOCAL` as one user; the principal is named exactly
/// as configured. Two names that differ only in case are refused as
/// duplicates.
///
/// [`verify`](UserDirectory::verify) does the same work for an unknown user as
/// for a known one: it checks the password against a decoy hash made once at
/// the directory's [`HashCost`], so neither the answer nor its timing tells
/// whether the user exists (as long as stored hashes use that same cost).
///
/// # Users file
///
/// UTF-8 text, one user per line:
///
/// ```text
/// name:phc-hash[:group,group,...]
/// ```
///
/// - The name is everything before the **first** `:` (user names cannot
///   contain `:`, since Basic authentication splits there). It may contain
///   `@`, `\` and spaces inside, but no control characters, and it neither
///   starts nor ends with whitespace.
/// - The hash is an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`,
///   made by [`hash_password`]); PHC strings never contain `:`, so the hash
///   ends at the next `:` or at the end of the line.
/// - Groups, if any, follow that second `:`, separated by `,`; spaces around
///   each group are ignored. A group name may contain `:` but not `,`.
/// - Blank lines and lines whose first non-blank character is `#` are
///   ignored; surrounding whitespace and a trailing `\r` are ignored.
///
/// Limits: 64 MiB per file, 16 KiB per line, 100 000 users, 256 groups per
/// user, 256 bytes per user or group name. Errors name the offending line.
///
/// ```text
/// # tower-cis users
/// Administrator@vsphere.local:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$…:vsphere.local\Administrators
/// CORP\backup:$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0b3RoZXJzYQ$…
/// ```
///
/// ```
/// use tower_cis::auth::{HashCost, UserDirectory, hash_password};
/// let cost = HashCost::insecure_fast_for_tests();
/// let phc = hash_password("VMware1!", cost).unwrap();
/// let text = format!("# users\nAdministrator@vsphere.local:{phc}:vsphere.local\\Administrators\n");
/// let users: UserDirectory = text.parse::<UserDirectory>().unwrap().with_cost(cost);
///
/// let admin = users.verify("ADMINISTRATOR@vsphere.local", "VMware1!").unwrap();
/// assert_eq!(admin.name(), "Administrator@vsphere.local");
/// assert!(admin.is_member_of("vsphere.local\\Administrators"));
/// assert!(users.verify("Administrator@vsphere.local", "wrong").is_none());
/// assert!(users.verify("nobody", "VMware1!").is_none());
/// ```
#[derive(Clone)]
pub struct UserDirectory {
    users: HashMap<Box<str>, UserRecord>,
    cost: HashCost,
    decoy: OnceLock<Option<PasswordHashString>>,
}

/// The key a user name is looked up by: its Unicode lowercase form.
pub(crate) fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

impl UserDirectory {
    /// An empty directory with the default (production) [`HashCost`].
    pub fn new() -> Self {
        UserDirectory { users: HashMap::new(), cost: HashCost::default(), decoy: OnceLock::new() }
    }

    /// The same directory hashing new passwords, and the decoy for unknown
    /// users, at `cost`.
    pub fn with_cost(mut self, cost: HashCost) -> Self {
        self.cost = cost;
        self.decoy = OnceLock::new();
        self
    }

    /// The same directory with one more user and no groups, whose password is
    /// hashed now at the directory's cost.
    ///
    /// ```
    /// use tower_cis::auth::{HashCost, UserDirectory};
    /// let users = UserDirectory::new()
    ///     .with_cost(HashCost::insecure_fast_for_tests())
    ///     .with_user("alice", "correct horse")?
    ///     .with_user("bob", "battery staple")?;
    /// assert_eq!(users.len(), 2);
    /// assert!(users.clone().with_user("ALICE", "again").is_err());
    /// # Ok::<(), tower_cis::auth::DirectoryError>(())
    /// ```
    pub fn with_user(self, name: &str, password: &str) -> Result<Self, DirectoryError> {
        check_name(name)?;
        let phc = hash_password(password, self.cost)?;
        self.with_hashed_user(name, &phc, std::iter::empty::<&str>())
    }

    /// The same directory with one more user, given by the PHC string of an
    /// argon2id hash (as [`hash_password`] makes) and the user's groups.
    ///
    /// The hash must be argon2id version 19 with a salt of at least 8 bytes,
    /// an output of at least 16 bytes and a cost within [`HashCost`]'s maxima.
    ///
    /// ```
    /// use tower_cis::auth::{HashCost, UserDirectory, hash_password};
    /// let phc = hash_password("s3cret", HashCost::insecure_fast_for_tests())?;
    /// let users = UserDirectory::new().with_hashed_user("CORP\\ops", &phc, ["CORP\\Operators"])?;
    /// assert!(users.clone().with_hashed_user("eve", "$2b$12$notargon", ["x"]).is_err());
    /// # Ok::<(), tower_cis::auth::DirectoryError>(())
    /// ```
    pub fn with_hashed_user<I, G>(mut self, name: &str, phc: &str, groups: I) -> Result<Self, DirectoryError>
    where
        I: IntoIterator<Item = G>,
        G: AsRef<str>,
    {
        check_name(name)?;
        let hash = parse_phc(phc)?;
        let mut checked = Vec::new();
        for group in groups {
            let group = group.as_ref();
            check_group(group)?;
            if checked.len() == MAX_GROUPS {
                return Err(DirectoryError::new(
                    DirectoryErrorKind::InvalidGroup,
                    None,
                    format!("a user may be a member of at most {MAX_GROUPS} groups"),
                ));
            }
            checked.push(Box::<str>::from(group));
        }
        let key = fold_name(name);
        if self.users.contains_key(key.as_str()) {
            return Err(DirectoryError::new(
                DirectoryErrorKind::DuplicateUser,
                None,
                format!("`{name}` is already defined (user names are compared case-insensitively)"),
            ));
        }
        if self.users.len() >= MAX_USERS {
            return Err(DirectoryError::new(
                DirectoryErrorKind::TooManyUsers,
                None,
                format!("a directory holds at most {MAX_USERS} users"),
            ));
        }
        let record = UserRecord { name: name.into(), hash, groups: checked.into_boxed_slice() };
        self.users.insert(key.into_boxed_str(), record);
        Ok(self)
    }

    /// Reads a users file (format in the [type documentation](UserDirectory)).
    /// The directory has the default [`HashCost`]; set the one the file's
    /// hashes use with [`with_cost`](UserDirectory::with_cost).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DirectoryError> {
        let path = path.as_ref();
        let io_error = |error: std::io::Error| {
            DirectoryError::new(DirectoryErrorKind::Io, None, format!("{}: {error}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io_error)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large_file());
        }
        let text = String::from_utf8(bytes).map_err(|error| {
            let line = error.as_bytes()[..error.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            DirectoryError::new(DirectoryErrorKind::Syntax, Some(line), "the users file is not UTF-8")
        })?;
        text.parse()
    }

    /// Renders the directory as a users file, sorted by user name, that
    /// [`from_file`](UserDirectory::from_file) reads back.
    pub fn to_users_file(&self) -> String {
        let mut records: Vec<&UserRecord> = self.users.values().collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::new();
        for record in records {
            text.push_str(&record.name);
            text.push(':');
            text.push_str(record.hash.as_str());
            if !record.groups.is_empty() {
                text.push(':');
                text.push_str(&record.groups.join(","));
            }
            text.push('\n');
        }
        text
    }

    /// How many users the directory holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the directory holds no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The cost of new hashes and of the decoy hash.
    pub fn cost(&self) -> HashCost {
        self.cost
    }

    /// Checks `password` for `user` (case-insensitive) and answers the
    /// principal, named as configured, with its groups.
    ///
    /// Runs argon2 on the calling thread, whether or not the user exists: for
    /// an unknown user the password is checked against a decoy hash, and the
    /// answer is `None` like for a wrong password. The comparison of hash
    /// outputs is constant-time (argon2's `PasswordVerifier`).
    pub fn verify(&self, user: &str, password: &str) -> Option<Principal> {
        match self.users.get(fold_name(user).as_str()) {
            Some(record) => check_password(&record.hash, password)
                .then(|| Principal::new(&*record.name).with_groups(record.groups.iter().cloned())),
            None => {
                if let Some(decoy) = self.decoy() {
                    // Same work as a known user's check; the result is
                    // irrelevant, an unknown user never logs in.
                    let _ = check_password(decoy, password);
                }
                None
            }
        }
    }

    /// Makes the decoy hash now rather than at the first login of an unknown
    /// user, so that login's timing is no different from the others.
    pub(crate) fn prepare(&self) {
        let _ = self.decoy();
    }

    /// How many stored hashes use a cost other than the directory's.
    pub(crate) fn cost_mismatches(&self) -> usize {
        self.users
            .values()
            .filter(|record| {
                Params::try_from(&record.hash.password_hash()).map_or(true, |params| HashCost::of(&params) != self.cost)
            })
            .count()
    }

    fn decoy(&self) -> Option<&PasswordHashString> {
        self.decoy
            .get_or_init(|| {
                // A fixed password and salt: nobody can log in with the decoy,
                // whatever it matches, so it needs no secrecy, only the cost.
                let salt = SaltString::encode_b64(b"tower-cis-decoy-salt").ok()?;
                let hash = self.cost.hasher().hash_password(b"tower-cis decoy password", &salt);
                match hash {
                    Ok(hash) => Some(hash.serialize()),
                    Err(error) => {
                        tracing::error!(%error, "cannot make the decoy password hash; unknown users answer faster");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl Default for UserDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDirectory").field("users", &self.users.len()).field("cost", &self.cost).finish()
    }
}

impl FromStr for UserDirectory {
    type Err = DirectoryError;

    /// Parses the text of a users file (format in the
    /// [type documentation](UserDirectory)).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large_file());
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut directory = UserDirectory::new();
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            directory = parse_line(directory, line).map_err(|error| error.at(number))?;
        }
        Ok(directory)
    }
}

fn too_large_file() -> DirectoryError {
    DirectoryError::new(
        DirectoryErrorKind::TooLarge,
        None,
        format!("the users file is larger than {MAX_FILE_BYTES} bytes"),
    )
}

fn parse_line(directory: UserDirectory, line: &str) -> Result<UserDirectory, DirectoryError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(DirectoryError::new(
            DirectoryErrorKind::TooLarge,
            None,
            format!("the line is longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(directory);
    }
    let Some((name, rest)) = line.split_once(':') else {
        return Err(DirectoryError::new(DirectoryErrorKind::Syntax, None, "expected `name:hash[:group,...]`"));
    };
    let (phc, groups) = match rest.split_once(':') {
        Some((phc, groups)) => (phc, groups.trim()),
        None => (rest, ""),
    };
    if phc.is_empty() {
        return Err(DirectoryError::new(DirectoryErrorKind::Syntax, None, "the password hash is missing"));
    }
    let groups: Vec<&str> = if groups.is_empty() { Vec::new() } else { groups.split(',').map(str::trim).collect() };
    directory.with_hashed_user(name, phc.trim(), groups)
}

fn check_name(name: &str) -> Result<(), DirectoryError> {
    let problem = if name.is_empty() {
        "the user name is empty".to_owned()
    } else if name.len() > MAX_USER_LEN {
        format!("the user name is longer than {MAX_USER_LEN} bytes")
    } else if name.contains(':') {
        format!("`{name}` contains `:`")
    } else if name.chars().any(char::is_control) {
        "the user name contains a control character".to_owned()
    } else if name.trim() != name {
        format!("`{name}` starts or ends with whitespace")
    } else {
        return Ok(());
    };
    Err(DirectoryError::new(DirectoryErrorKind::InvalidName, None, problem))
}

fn check_group(group: &str) -> Result<(), DirectoryError> {
    let problem = if group.is_empty() {
        "a group name is empty".to_owned()
    } else if group.len() > MAX_GROUP_LEN {
        format!("a group name is longer than {MAX_GROUP_LEN} bytes")
    } else if group.contains(',') {
        format!("`{group}` contains `,`")
    } else if group.chars().any(char::is_control) {
        "a group name contains a control character".to_owned()
    } else if group.trim() != group {
        format!("`{group}` starts or ends with whitespace")
    } else {
        return Ok(());
    };
    Err(DirectoryError::new(DirectoryErrorKind::InvalidGroup, None, problem))
}

/// Checks that `phc` is an argon2id v19 PHC string within the cost maxima.
fn parse_phc(phc: &str) -> Result<PasswordHashString, DirectoryError> {
    let invalid = |detail: String| DirectoryError::new(DirectoryErrorKind::InvalidHash, None, detail);
    if phc.len() > MAX_PHC_LEN {
        return Err(invalid(format!("longer than {MAX_PHC_LEN} bytes")));
    }
    let hash = PasswordHash::new(phc).map_err(|error| invalid(format!("not a PHC string ({error})")))?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(invalid(format!("algorithm `{}` is not argon2id", hash.algorithm)));
    }
    if hash.version != Some(Version::V0x13.into()) {
        return Err(invalid("version is not v=19".to_owned()));
    }
    let params = Params::try_from(&hash).map_err(|error| invalid(format!("bad parameters ({error})")))?;
    HashCost::of(&params).check().map_err(invalid)?;
    let mut salt_bytes = [0_u8; 64];
    let salt_len = hash.salt.and_then(|salt| salt.decode_b64(&mut salt_bytes).ok()).map_or(0, <[u8]>::len);
    if salt_len < MIN_SALT_BYTES {
        return Err(invalid(format!("the salt is shorter than {MIN_SALT_BYTES} bytes")));
    }
    if hash.hash.map_or(0, |output| output.len()) < MIN_OUTPUT_BYTES {
        return Err(invalid(format!("the hash output is shorter than {MIN_OUTPUT_BYTES} bytes")));
    }
    Ok(hash.serialize())
}

fn check_password(hash: &PasswordHashString, password: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), &hash.password_hash()).is_ok()
}
