//! The verification of one token: limits, structure, signature, claims, time.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bergshamra_dsig::{DsigContext, VerifyResult};
use bergshamra_keys::KeysManager;
use uppsala::{Document, NodeId, NodeKind};

use crate::{Principal, SharedClock, SystemClock, Timestamp};

pub(crate) const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SIGNATURE_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
];
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const HOLDER_OF_KEY: &str = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key";
/// The `Name` of the attribute that lists a vSphere user's groups.
pub const GROUP_IDENTITY: &str = "http://rsa.com/schemas/attr-names/2009/01/GroupIdentity";
/// Attribute names that declare IDs: a document may use each value once.
const ID_ATTRIBUTES: [&str; 4] = ["ID", "Id", "id", "AssertionID"];
/// The deepest element nesting accepted; STS tokens nest 6 deep.
const MAX_DEPTH: u32 = 32;

/// The clock skew tolerated by default: 10 minutes, vCenter SSO's default
/// clock tolerance.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(600);
/// The largest token (XML) accepted by default, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token was refused. The kind is for logs and tests; clients see one
/// 401 whatever it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SamlErrorKind {
    /// The token is larger than the configured limit.
    TooLarge,
    /// The token has a DOCTYPE or an entity declaration.
    Doctype,
    /// The token is not well-formed XML.
    Malformed,
    /// The token has a comment or processing instruction, which the
    /// signature does not cover.
    CommentOrInstruction,
    /// The root is not a SAML 2.0 `Assertion` with an `ID`.
    NotAnAssertion,
    /// The document holds more than one assertion (signature wrapping).
    MultipleAssertions,
    /// Two elements share an ID.
    DuplicateId,
    /// There is no signature, or more than one.
    Unsigned,
    /// The signature's shape or algorithms are outside the allow-list
    /// (c14n, transforms, digest, signature method, references).
    SignaturePolicy,
    /// No trusted certificate is configured.
    NoTrustedCertificate,
    /// The signature does not verify with any trusted certificate, or a
    /// digest does not match.
    BadSignature,
    /// The signature does not cover the root assertion.
    NotCovered,
    /// A required claim is missing or malformed (Issuer, Subject, NameID,
    /// Conditions, times).
    BadClaims,
    /// The subject is confirmed by holder-of-key, not bearer.
    HolderOfKey,
    /// `NotBefore - skew` is later than now.
    NotYetValid,
    /// `NotOnOrAfter + skew` is not later than now.
    Expired,
    /// The issuer is not the configured one.
    WrongIssuer,
    /// The audience restriction does not name the configured audience.
    WrongAudience,
}

/// A refused token: the kind of refusal and details for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamlError {
    kind: SamlErrorKind,
    detail: Cow<'static, str>,
}

impl SamlError {
    fn new(kind: SamlErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        SamlError { kind, detail: detail.into() }
    }

    /// The kind of refusal.
    pub fn kind(&self) -> SamlErrorKind {
        self.kind
    }

    /// Details for operators; never shown to clients.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for SamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SAML token refused ({:?}): {}", self.kind, self.detail)
    }
}

impl std::error::Error for SamlError {}

/// Why a certificate could not be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateError(String);

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unusable STS certificate: {}", self.0)
    }
}

impl std::error::Error for CertificateError {}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedAssertion {
    /// The assertion's `ID`.
    pub id: String,
    /// The `Issuer`'s text.
    pub issuer: String,
    /// The full text of `Subject/NameID` (a UPN such as `Administrator@VSPHERE.LOCAL`).
    pub subject: String,
    /// The values of the `GroupIdentity` attribute.
    pub groups: Vec<String>,
    /// `Conditions/@NotBefore`.
    pub not_before: Timestamp,
    /// The earlier of `Conditions/@NotOnOrAfter` and the bearer
    /// confirmation's `NotOnOrAfter`: when the token stops being valid.
    pub not_on_or_after: Timestamp,
}

impl VerifiedAssertion {
    /// The subject as a principal, with its groups.
    pub fn principal(&self) -> Principal {
        Principal::new(self.subject.as_str()).with_groups(self.groups.iter().map(String::as_str))
    }
}

/// Verifies SAML 2.0 bearer assertions issued by a vSphere STS.
///
/// A token is accepted only if every check passes (fail closed):
///
/// 1. At most [`with_max_token_len`](Self::with_max_token_len) bytes; no
///    DOCTYPE, no entity declarations, no comments or processing
///    instructions anywhere, at most 32 levels deep.
/// 2. The root is the only `saml2:Assertion` (no wrapping through `Advice`,
///    no second assertion) and no ID is used twice.
/// 3. Exactly one `ds:Signature`, the root's second child (after `Issuer`),
///    of the allow-listed shape: exclusive c14n without comments, RSA with
///    SHA-256/384/512, exactly one `Reference` to `#<root ID>` with the
///    transforms enveloped-signature then exclusive c14n, a SHA-2 digest,
///    no `Object`.
/// 4. The signature verifies, with [bergshamra], against a configured
///    certificate; certificates in the token's `KeyInfo` are never trusted;
///    the verified reference must resolve to the root.
/// 5. Claims are read from that same parsed root: one `Issuer`, one
///    `Subject` with one `NameID` (its full text, which must have no
///    surrounding whitespace or control characters), exactly one
///    `SubjectConfirmation`, by bearer, and one `Conditions` with
///    `NotBefore` and `NotOnOrAfter` (strict RFC 3339 times).
/// 6. `NotBefore - skew <= now < NotOnOrAfter + skew`, for the conditions
///    and the bearer confirmation, on the injected clock.
/// 7. When configured: the `Issuer` is exactly the expected one, and every
///    `AudienceRestriction` names the expected audience (and there is one).
///
/// [bergshamra]: https://docs.rs/bergshamra
///
/// ```
/// use std::time::Duration;
/// use tower_cis::auth::saml::{SamlErrorKind, SamlVerifier};
///
/// let verifier = SamlVerifier::new().with_clock_skew(Duration::from_secs(60));
/// // No trusted certificate: every token is refused.
/// let refused = verifier.verify("<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>");
/// assert_eq!(refused.unwrap_err().kind(), SamlErrorKind::NoTrustedCertificate);
/// ```
#[derive(Clone)]
pub struct SamlVerifier {
    keys: KeysManager,
    trusted: usize,
    clock: SharedClock,
    skew: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    max_token_len: usize,
}

impl fmt::Debug for SamlVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlVerifier")
            .field("trusted_certificates", &self.trusted)
            .field("clock", &self.clock)
            .field("skew", &self.skew)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_token_len", &self.max_token_len)
            .finish()
    }
}

impl Default for SamlVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl SamlVerifier {
    /// A verifier that trusts no certificate yet, on the system clock, with
    /// [`DEFAULT_CLOCK_SKEW`] and [`DEFAULT_MAX_TOKEN_LEN`], and no issuer or
    /// audience check.
    pub fn new() -> Self {
        SamlVerifier {
            keys: KeysManager::new(),
            trusted: 0,
            clock: Arc::new(SystemClock),
            skew: DEFAULT_CLOCK_SKEW,
            issuer: None,
            audience: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// Also trusts the STS signing certificate `der` (X.509, DER).
    pub fn with_trusted_certificate_der(mut self, der: &[u8]) -> Result<Self, CertificateError> {
        let key = bergshamra_keys::loader::load_x509_cert_der(der).map_err(|e| CertificateError(e.to_string()))?;
        if key.algorithm_name() != "RSA" {
            return Err(CertificateError(format!("the key is {}, not RSA", key.algorithm_name())));
        }
        self.keys.add_key(key);
        self.trusted += 1;
        Ok(self)
    }

    /// Also trusts every certificate in `pem` (one or more `CERTIFICATE`
    /// blocks, e.g. the file `--saml-cert` names).
    pub fn with_trusted_certificates_pem(mut self, pem: &str) -> Result<Self, CertificateError> {
        let blocks = pem_certificates(pem)?;
        if blocks.is_empty() {
            return Err(CertificateError("no CERTIFICATE block in the PEM text".into()));
        }
        for der in blocks {
            self = self.with_trusted_certificate_der(&der)?;
        }
        Ok(self)
    }

    /// How many certificates are trusted.
    pub fn trusted_certificates(&self) -> usize {
        self.trusted
    }

    /// Reads "now" from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Tolerates clocks that differ from the STS's by up to `skew`.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Accepts only tokens whose `Issuer` is exactly `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Accepts only tokens restricted to `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Refuses tokens longer than `bytes`.
    pub fn with_max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Verifies `xml`, a token as the client presented it.
    pub fn verify(&self, xml: &str) -> Result<VerifiedAssertion, SamlError> {
        use SamlErrorKind as K;
        if xml.len() > self.max_token_len {
            return Err(SamlError::new(K::TooLarge, format!("{} bytes", xml.len())));
        }
        if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
            return Err(SamlError::new(K::Doctype, "DOCTYPE or ENTITY declaration"));
        }
        if self.trusted == 0 {
            return Err(SamlError::new(K::NoTrustedCertificate, "no STS certificate is configured"));
        }
        let doc = uppsala::Parser::new()
            .with_forbid_dtd(true)
            .with_forbid_entities(true)
            .with_max_depth(MAX_DEPTH)
            .parse(xml)
            .map_err(|e| SamlError::new(K::Malformed, e.to_string()))?;
        if doc.doctype.is_some() {
            return Err(SamlError::new(K::Doctype, "DOCTYPE"));
        }
        let root = doc.document_element().ok_or_else(|| SamlError::new(K::Malformed, "no root element"))?;
        let id = scan(&doc, root)?;
        let signature = signature_shape(&doc, root, &id)?;
        self.check_signature(&doc, xml, root, signature)?;
        let claims = claims(&doc, root)?;
        self.check(&claims)?;
        Ok(VerifiedAssertion {
            id,
            issuer: claims.issuer,
            subject: claims.subject,
            groups: claims.groups,
            not_before: claims.not_before,
            not_on_or_after: claims.not_on_or_after,
        })
    }

    /// The cryptographic check, by bergshamra, with the pinned keys only.
    fn check_signature(&self, doc: &Document<'_>, xml: &str, root: NodeId, signature: NodeId) -> Result<(), SamlError> {
        use SamlErrorKind as K;
        let mut context = DsigContext::new(self.keys.clone());
        context.trusted_keys_only = true;
        context.strict_verification = true;
        context.require_reference_digests = true;
        context.insecure = false;
        let result = bergshamra_dsig::verify::verify_document_with_source(&context, doc, Some(xml))
            .map_err(|e| SamlError::new(K::BadSignature, e.to_string()))?;
        match result {
            VerifyResult::Valid { signature_node, references, .. } => {
                let covers_root = signature_node == signature
                    && references.len() == 1
                    && references[0].digest_verified
                    && references[0].resolved_node == Some(root);
                if covers_root {
                    Ok(())
                } else {
                    Err(SamlError::new(K::NotCovered, "the verified reference is not the root assertion"))
                }
            }
            VerifyResult::Invalid { reason } => Err(SamlError::new(K::BadSignature, reason)),
        }
    }

    /// Issuer, audience and time window.
    fn check(&self, claims: &Claims) -> Result<(), SamlError> {
        use SamlErrorKind as K;
        if let Some(expected) = &self.issuer
            && claims.issuer != *expected
        {
            return Err(SamlError::new(K::WrongIssuer, format!("issuer {:?}", claims.issuer)));
        }
        if let Some(expected) = &self.audience {
            let restricted = !claims.audiences.is_empty();
            if !restricted || !claims.audiences.iter().all(|restriction| restriction.contains(expected)) {
                return Err(SamlError::new(K::WrongAudience, format!("audiences {:?}", claims.audiences)));
            }
        }
        let now = self.clock.now();
        for (not_before, not_on_or_after) in &claims.windows {
            if let Some(not_before) = not_before
                && now < not_before.saturating_sub(self.skew)
            {
                return Err(SamlError::new(K::NotYetValid, format!("not before {not_before}, now {now}")));
            }
            if now >= not_on_or_after.saturating_add(self.skew) {
                return Err(SamlError::new(K::Expired, format!("not on or after {not_on_or_after}, now {now}")));
            }
        }
        Ok(())
    }
}

/// Whole-document checks: no comments or PIs, one assertion (the root), IDs
/// unique. Returns the root's ID.
fn scan(doc: &Document<'_>, root: NodeId) -> Result<String, SamlError> {
    use SamlErrorKind as K;
    let root_element = doc.element(root).ok_or_else(|| SamlError::new(K::Malformed, "no root element"))?;
    if !root_element.matches_name_ns(SAML_NS, "Assertion") || root_element.get_attribute("Version") != Some("2.0") {
        return Err(SamlError::new(K::NotAnAssertion, "the root is not a SAML 2.0 Assertion"));
    }
    let id = match root_element.attributes.iter().find(|a| a.name.namespace_uri.is_none() && a.name.local_name == "ID")
    {
        Some(id) if !id.value.is_empty() => id.value.to_string(),
        _ => return Err(SamlError::new(K::NotAnAssertion, "the Assertion has no ID")),
    };
    for top in doc.children_iter(doc.root()) {
        if let Some(NodeKind::Comment(_) | NodeKind::ProcessingInstruction(_)) = doc.node_kind(top) {
            return Err(SamlError::new(K::CommentOrInstruction, "comment or PI outside the root"));
        }
    }
    let mut ids = HashSet::new();
    for node in doc.descendants(root).into_iter().chain([root]) {
        match doc.node_kind(node) {
            Some(NodeKind::Comment(_) | NodeKind::ProcessingInstruction(_)) => {
                return Err(SamlError::new(K::CommentOrInstruction, "comment or processing instruction"));
            }
            Some(NodeKind::Element(element)) => {
                let assertion = element.matches_name_ns(SAML_NS, "Assertion")
                    || element.matches_name_ns(SAML_NS, "EncryptedAssertion");
                if assertion && node != root {
                    return Err(SamlError::new(K::MultipleAssertions, "an assertion inside the assertion"));
                }
                for attribute in &element.attributes {
                    if ID_ATTRIBUTES.contains(&&*attribute.name.local_name) && !ids.insert(attribute.value.clone()) {
                        return Err(SamlError::new(K::DuplicateId, format!("ID {:?} used twice", attribute.value)));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(id)
}

/// Checks the signature's shape against the allow-list; returns its node.
fn signature_shape(doc: &Document<'_>, root: NodeId, id: &str) -> Result<NodeId, SamlError> {
    use SamlErrorKind as K;
    let policy = |detail: &'static str| SamlError::new(K::SignaturePolicy, detail);
    let signatures: Vec<NodeId> = doc
        .descendants(root)
        .into_iter()
        .filter(|&n| doc.element(n).is_some_and(|e| e.matches_name_ns(DSIG_NS, "Signature")))
        .collect();
    let [signature] = signatures[..] else {
        return Err(SamlError::new(K::Unsigned, format!("{} signatures", signatures.len())));
    };
    let top = children(doc, root)?;
    let issuer_first = top.first().is_some_and(|&n| is(doc, n, SAML_NS, "Issuer"));
    if !issuer_first || top.get(1) != Some(&signature) {
        return Err(policy("the Signature is not the root's second child, after Issuer"));
    }
    let parts = children(doc, signature)?;
    let (signed_info, rest) = parts.split_first().ok_or_else(|| policy("empty Signature"))?;
    if !is(doc, *signed_info, DSIG_NS, "SignedInfo")
        || !rest.first().is_some_and(|&n| is(doc, n, DSIG_NS, "SignatureValue"))
        || !rest[1..].iter().all(|&n| is(doc, n, DSIG_NS, "KeyInfo"))
        || rest.len() > 2
    {
        return Err(policy("Signature children other than SignedInfo, SignatureValue, KeyInfo"));
    }
    let info = children(doc, *signed_info)?;
    let [c14n, method, reference] = info[..] else {
        return Err(policy("SignedInfo must hold CanonicalizationMethod, SignatureMethod and one Reference"));
    };
    if !is(doc, c14n, DSIG_NS, "CanonicalizationMethod") || algorithm(doc, c14n) != Some(EXC_C14N) {
        return Err(policy("canonicalization is not exclusive c14n without comments"));
    }
    only_inclusive_namespaces(doc, c14n)?;
    if !is(doc, method, DSIG_NS, "SignatureMethod")
        || !algorithm(doc, method).is_some_and(|a| SIGNATURE_METHODS.contains(&a))
        || !children(doc, method)?.is_empty()
    {
        return Err(policy("the signature method is not RSA with SHA-256/384/512"));
    }
    if !is(doc, reference, DSIG_NS, "Reference") {
        return Err(policy("SignedInfo must hold exactly one Reference"));
    }
    let expected_uri = format!("#{id}");
    if doc.get_attribute(reference, "URI") != Some(expected_uri.as_str()) {
        return Err(policy("the Reference does not point at the root assertion's ID"));
    }
    let reference_parts = children(doc, reference)?;
    let [transforms, digest, digest_value] = reference_parts[..] else {
        return Err(policy("the Reference must hold Transforms, DigestMethod and DigestValue"));
    };
    if !is(doc, transforms, DSIG_NS, "Transforms")
        || !is(doc, digest, DSIG_NS, "DigestMethod")
        || !is(doc, digest_value, DSIG_NS, "DigestValue")
    {
        return Err(policy("the Reference must hold Transforms, DigestMethod and DigestValue"));
    }
    if !algorithm(doc, digest).is_some_and(|a| DIGEST_METHODS.contains(&a)) {
        return Err(policy("the digest is not SHA-256/384/512"));
    }
    let steps = children(doc, transforms)?;
    let [enveloped, exclusive] = steps[..] else {
        return Err(policy("the transforms must be enveloped-signature then exclusive c14n"));
    };
    let transform = |n| is(doc, n, DSIG_NS, "Transform");
    if !transform(enveloped)
        || !transform(exclusive)
        || algorithm(doc, enveloped) != Some(ENVELOPED)
        || algorithm(doc, exclusive) != Some(EXC_C14N)
        || !children(doc, enveloped)?.is_empty()
    {
        return Err(policy("the transforms must be enveloped-signature then exclusive c14n"));
    }
    only_inclusive_namespaces(doc, exclusive)?;
    Ok(signature)
}

fn only_inclusive_namespaces(doc: &Document<'_>, node: NodeId) -> Result<(), SamlError> {
    let inner = children(doc, node)?;
    let ok = match inner[..] {
        [] => true,
        [only] => is(doc, only, EXC_C14N_NS, "InclusiveNamespaces") && children(doc, only)?.is_empty(),
        _ => false,
    };
    if ok { Ok(()) } else { Err(SamlError::new(SamlErrorKind::SignaturePolicy, "unexpected c14n parameters")) }
}

/// The claims of a signed assertion, before the configured checks.
struct Claims {
    issuer: String,
    subject: String,
    groups: Vec<String>,
    not_before: Timestamp,
    not_on_or_after: Timestamp,
    /// Every `AudienceRestriction`, as its list of audiences.
    audiences: Vec<Vec<String>>,
    /// Each time window to check: the conditions, the confirmation data.
    windows: Vec<(Option<Timestamp>, Timestamp)>,
}

fn claims(doc: &Document<'_>, root: NodeId) -> Result<Claims, SamlError> {
    use SamlErrorKind as K;
    let bad = |detail: &'static str| SamlError::new(K::BadClaims, detail);
    let top = children(doc, root)?;
    let named = |name: &str| top.iter().copied().filter(|&n| is(doc, n, SAML_NS, name)).collect::<Vec<_>>();
    let [issuer] = named("Issuer")[..] else { return Err(bad("not exactly one Issuer")) };
    let issuer = text(doc, issuer)?;
    let [subject] = named("Subject")[..] else { return Err(bad("not exactly one Subject")) };
    let subject_parts = children(doc, subject)?;
    let (name_id, confirmations) = subject_parts.split_first().ok_or_else(|| bad("empty Subject"))?;
    if !is(doc, *name_id, SAML_NS, "NameID") {
        return Err(bad("the Subject does not start with a NameID"));
    }
    let name = text(doc, *name_id)?;
    if name.is_empty() || name.trim() != name || name.chars().any(char::is_control) {
        return Err(bad("the NameID is empty, padded or has control characters"));
    }
    let [confirmation] = confirmations[..] else {
        return Err(bad("not exactly one SubjectConfirmation"));
    };
    if !is(doc, confirmation, SAML_NS, "SubjectConfirmation") {
        return Err(bad("not a SubjectConfirmation after the NameID"));
    }
    match doc.get_attribute(confirmation, "Method") {
        Some(BEARER) => {}
        Some(HOLDER_OF_KEY) => return Err(SamlError::new(K::HolderOfKey, "holder-of-key token presented as bearer")),
        _ => return Err(bad("unknown subject confirmation method")),
    }
    let mut windows = Vec::new();
    for data in children(doc, confirmation)? {
        if is(doc, data, SAML_NS, "SubjectConfirmationData") {
            let not_on_or_after =
                time(doc, data, "NotOnOrAfter")?.ok_or_else(|| bad("bearer data without NotOnOrAfter"))?;
            windows.push((time(doc, data, "NotBefore")?, not_on_or_after));
        }
    }
    let [conditions] = named("Conditions")[..] else { return Err(bad("not exactly one Conditions")) };
    let not_before = time(doc, conditions, "NotBefore")?.ok_or_else(|| bad("Conditions without NotBefore"))?;
    let until = time(doc, conditions, "NotOnOrAfter")?.ok_or_else(|| bad("Conditions without NotOnOrAfter"))?;
    if until <= not_before {
        return Err(bad("the Conditions' window is empty"));
    }
    windows.insert(0, (Some(not_before), until));
    let not_on_or_after = windows.iter().map(|(_, until)| *until).min().unwrap_or(until);
    let mut audiences = Vec::new();
    for restriction in children(doc, conditions)? {
        if is(doc, restriction, SAML_NS, "AudienceRestriction") {
            let mut names = Vec::new();
            for audience in children(doc, restriction)? {
                if is(doc, audience, SAML_NS, "Audience") {
                    names.push(text(doc, audience)?);
                }
            }
            audiences.push(names);
        }
    }
    let mut groups = Vec::new();
    for statement in named("AttributeStatement") {
        for attribute in children(doc, statement)? {
            if is(doc, attribute, SAML_NS, "Attribute") && doc.get_attribute(attribute, "Name") == Some(GROUP_IDENTITY)
            {
                for value in children(doc, attribute)? {
                    if is(doc, value, SAML_NS, "AttributeValue") {
                        groups.push(text(doc, value)?);
                    }
                }
            }
        }
    }
    Ok(Claims { issuer, subject: name, groups, not_before, not_on_or_after, audiences, windows })
}

/// The element children of `node`; text between them must be whitespace.
fn children(doc: &Document<'_>, node: NodeId) -> Result<Vec<NodeId>, SamlError> {
    let mut elements = Vec::new();
    for child in doc.children_iter(node) {
        match doc.node_kind(child) {
            Some(NodeKind::Element(_)) => elements.push(child),
            Some(NodeKind::Text(t) | NodeKind::CData(t)) if t.trim().is_empty() => {}
            _ => return Err(SamlError::new(SamlErrorKind::BadClaims, "unexpected content between elements")),
        }
    }
    Ok(elements)
}

/// The full text of a leaf element: every text and CDATA child, joined.
/// An element child makes it malformed.
fn text(doc: &Document<'_>, node: NodeId) -> Result<String, SamlError> {
    let mut out = String::new();
    for child in doc.children_iter(node) {
        match doc.node_kind(child) {
            Some(NodeKind::Text(t) | NodeKind::CData(t)) => out.push_str(t),
            _ => return Err(SamlError::new(SamlErrorKind::BadClaims, "an element inside a text claim")),
        }
    }
    Ok(out)
}

fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(ns, local))
}

fn algorithm<'d>(doc: &'d Document<'_>, node: NodeId) -> Option<&'d str> {
    doc.get_attribute(node, "Algorithm")
}

/// An optional xs:dateTime attribute, strictly RFC 3339 (with a zone).
fn time(doc: &Document<'_>, node: NodeId, name: &str) -> Result<Option<Timestamp>, SamlError> {
    match doc.get_attribute(node, name) {
        None => Ok(None),
        Some(text) => Timestamp::parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| SamlError::new(SamlErrorKind::BadClaims, format!("{name} is not an RFC 3339 time"))),
    }
}

/// The DER of every `CERTIFICATE` block of a PEM text.
fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, CertificateError> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body.find(END).ok_or_else(|| CertificateError("unterminated CERTIFICATE block".into()))?;
        let base64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .map_err(|e| CertificateError(format!("CERTIFICATE block is not base64: {e}")))?;
        out.push(der);
        rest = &body[end + END.len()..];
    }
    Ok(out)
}
