//! Test-only SAML tokens, minted offline: the assertion is written directly in
//! exclusive-canonical form (namespace declarations on the root only,
//! attributes in c14n order, no self-closing tags, escaped text), digested
//! without its Signature, and signed over the canonical SignedInfo with `rsa`
//! and `sha2`. This is independent of the verifier under test.
//!
//! The key pairs beside this file are test-only (`CN=test-only … do not trust`).
#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::Digest;
use tower_cis::auth::saml::{SamlAuthenticator, SamlVerifier};
use tower_cis::auth::{CompositeAuthenticator, HashCost, PasswordAuthenticator, UserDirectory};
use tower_cis::{Cis, ExpiryPolicy, ManualClock, MemoryStore, Timestamp};

pub const STS_KEY: &str = include_str!("sts-key.pem");
pub const STS_CERT: &str = include_str!("sts-cert.pem");
pub const ATTACKER_KEY: &str = include_str!("attacker-key.pem");
pub const ATTACKER_CERT: &str = include_str!("attacker-cert.pem");

/// Where the manual clock of every test stands.
pub const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
pub const ISSUER: &str = "https://vc.example.test/websso/SAML2/Metadata/vsphere.local";
pub const ADMIN: &str = "Administrator@VSPHERE.LOCAL";
pub const ADMINS: &str = "vsphere.local\\Administrators";
pub const GROUP_IDENTITY: &str = "http://rsa.com/schemas/attr-names/2009/01/GroupIdentity";

const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const HOLDER_OF_KEY: &str = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key";

/// The usual exclusive c14n transform of an STS token.
pub fn exc_c14n_transform() -> String {
    format!(
        "<ds:Transform Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" \
         PrefixList=\"xs xsi\"></ec:InclusiveNamespaces></ds:Transform>"
    )
}

/// What a minted token says and how it is signed.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub groups: Vec<String>,
    pub method: String,
    pub not_before: Timestamp,
    pub not_on_or_after: Timestamp,
    /// The bearer confirmation's NotOnOrAfter (None: no SubjectConfirmationData).
    pub confirmation_until: Option<Timestamp>,
    pub audience: Option<String>,
    /// `<saml2:Advice>` content, canonical, placed after Conditions.
    pub advice: Option<String>,
    pub c14n_method: String,
    pub signature_method: String,
    pub digest_method: String,
    /// The canonical `ds:Transform` elements of the Reference.
    pub transforms: String,
    /// The Reference's URI; None: `#<id>`.
    pub reference_uri: Option<String>,
    /// The key that signs, and the certificate written into KeyInfo.
    pub signing_key: &'static str,
    pub key_info_cert: &'static str,
    /// A text replacement in the body, made before signing.
    pub edit: Option<(String, String)>,
}

impl Default for Token {
    fn default() -> Self {
        Token {
            id: "_8f5e1b6c-2d3a-4b7e-9c1d-0a2b3c4d5e6f".into(),
            issuer: ISSUER.into(),
            name_id: ADMIN.into(),
            groups: vec![ADMINS.into(), "vsphere.local\\Everyone".into()],
            method: BEARER.into(),
            not_before: T0.saturating_sub(Duration::from_secs(60)),
            not_on_or_after: T0.saturating_add(Duration::from_secs(600)),
            confirmation_until: Some(T0.saturating_add(Duration::from_secs(600))),
            audience: None,
            advice: None,
            c14n_method: EXC_C14N.into(),
            signature_method: RSA_SHA256.into(),
            digest_method: SHA256.into(),
            transforms: format!("<ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform>{}", exc_c14n_transform()),
            reference_uri: None,
            signing_key: STS_KEY,
            key_info_cert: STS_CERT,
            edit: None,
        }
    }
}

pub fn escape_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\r', "&#xD;")
}

impl Token {
    /// The root's start tag, canonical.
    fn start_tag(&self) -> String {
        format!(
            "<saml2:Assertion xmlns:saml2=\"{SAML}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ID=\"{}\" IssueInstant=\"{}\" Version=\"2.0\">",
            self.id, self.not_before
        )
    }

    fn issuer_element(&self) -> String {
        format!(
            "<saml2:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{}</saml2:Issuer>",
            escape_text(&self.issuer)
        )
    }

    /// Everything after the Signature, canonical.
    pub fn body(&self) -> String {
        let confirmation_data = match self.confirmation_until {
            Some(until) => {
                format!("<saml2:SubjectConfirmationData NotOnOrAfter=\"{until}\"></saml2:SubjectConfirmationData>")
            }
            None => String::new(),
        };
        let audience = match &self.audience {
            Some(audience) => format!(
                "<saml2:AudienceRestriction><saml2:Audience>{}</saml2:Audience></saml2:AudienceRestriction>",
                escape_text(audience)
            ),
            None => String::new(),
        };
        let advice = match &self.advice {
            Some(advice) => format!("<saml2:Advice>{advice}</saml2:Advice>"),
            None => String::new(),
        };
        let groups: String = self
            .groups
            .iter()
            .map(|g| format!("<saml2:AttributeValue xsi:type=\"xs:string\">{}</saml2:AttributeValue>", escape_text(g)))
            .collect();
        let body = format!(
            "<saml2:Subject><saml2:NameID Format=\"http://schemas.xmlsoap.org/claims/UPN\">{name}</saml2:NameID>\
             <saml2:SubjectConfirmation Method=\"{method}\">{confirmation_data}</saml2:SubjectConfirmation>\
             </saml2:Subject>\
             <saml2:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{na}\">\
             <saml2:ProxyRestriction Count=\"10\"></saml2:ProxyRestriction>{audience}</saml2:Conditions>{advice}\
             <saml2:AuthnStatement AuthnInstant=\"{nb}\"><saml2:AuthnContext><saml2:AuthnContextClassRef>\
             urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml2:AuthnContextClassRef>\
             </saml2:AuthnContext></saml2:AuthnStatement>\
             <saml2:AttributeStatement><saml2:Attribute FriendlyName=\"Groups\" Name=\"{GROUP_IDENTITY}\" \
             NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:uri\">{groups}</saml2:Attribute>\
             <saml2:Attribute FriendlyName=\"givenName\" Name=\"http://rsa.com/schemas/attr-names/2009/01/GivenName\" \
             NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:uri\">\
             <saml2:AttributeValue xsi:type=\"xs:string\">Administrator</saml2:AttributeValue></saml2:Attribute>\
             </saml2:AttributeStatement>",
            name = escape_text(&self.name_id),
            method = self.method,
            nb = self.not_before,
            na = self.not_on_or_after,
        );
        match &self.edit {
            Some((from, to)) => body.replacen(from.as_str(), to, 1),
            None => body,
        }
    }

    /// The assertion without its Signature, canonical: what the digest covers.
    pub fn unsigned(&self) -> String {
        format!("{}{}{}</saml2:Assertion>", self.start_tag(), self.issuer_element(), self.body())
    }

    /// The canonical SignedInfo for `digest` (base64).
    pub fn signed_info(&self, digest: &str) -> String {
        let uri = self.reference_uri.clone().unwrap_or_else(|| format!("#{}", self.id));
        format!(
            "<ds:SignedInfo xmlns:ds=\"{DS}\"><ds:CanonicalizationMethod Algorithm=\"{}\">\
             </ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{}\"></ds:SignatureMethod>\
             <ds:Reference URI=\"{uri}\"><ds:Transforms>{}</ds:Transforms><ds:DigestMethod Algorithm=\"{}\">\
             </ds:DigestMethod><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
            self.c14n_method, self.signature_method, self.transforms, self.digest_method
        )
    }

    /// The Signature element for the canonical bytes `covered`.
    pub fn signature_for(&self, covered: &str) -> String {
        let sha1 = self.digest_method == SHA1;
        let digest = if sha1 {
            STANDARD.encode(sha1::Sha1::digest(covered))
        } else {
            STANDARD.encode(sha2::Sha256::digest(covered))
        };
        let signed_info = self.signed_info(&digest);
        let key = RsaPrivateKey::from_pkcs8_pem(self.signing_key).expect("test key");
        let value = if self.signature_method == RSA_SHA1 {
            key.sign(Pkcs1v15Sign::new::<sha1::Sha1>(), &sha1::Sha1::digest(&signed_info))
        } else {
            key.sign(Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(&signed_info))
        }
        .expect("RSA signature");
        // In the document, SignedInfo inherits xmlns:ds from Signature.
        let in_document = signed_info.replacen(&format!(" xmlns:ds=\"{DS}\""), "", 1);
        format!(
            "<ds:Signature xmlns:ds=\"{DS}\">{in_document}<ds:SignatureValue>{}</ds:SignatureValue>\
             <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
             </ds:Signature>",
            STANDARD.encode(value),
            pem_body(self.key_info_cert)
        )
    }

    /// The signed token, as an STS sends it.
    pub fn signed(&self) -> String {
        let signature = self.signature_for(&self.unsigned());
        format!("{}{}{}{}</saml2:Assertion>", self.start_tag(), self.issuer_element(), signature, self.body())
    }
}

/// The base64 body of a PEM block, on one line.
pub fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// `Authorization: SIGN token="…"` for `xml`.
pub fn sign_header(xml: &str) -> String {
    format!("SIGN token=\"{}\"", STANDARD.encode(gzip(xml.as_bytes())))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The verifier of the tests: trusts the test STS, on `clock`, 60 s skew.
pub fn verifier(clock: &ManualClock) -> SamlVerifier {
    SamlVerifier::new()
        .with_trusted_certificates_pem(STS_CERT)
        .expect("test certificate")
        .with_clock(Arc::new(clock.clone()))
        .with_clock_skew(Duration::from_secs(60))
}

pub type TestCis = Cis<MemoryStore, CompositeAuthenticator<PasswordAuthenticator, SamlAuthenticator>>;

/// The cis services with password and SAML login, on a manual clock at T0,
/// sessions living at most `max_lifetime`.
pub fn cis(verifier: SamlVerifier, clock: &ManualClock, max_lifetime: Duration) -> TestCis {
    let shared: tower_cis::SharedClock = Arc::new(clock.clone());
    let store = MemoryStore::builder()
        .policy(ExpiryPolicy::default().with_max_lifetime(max_lifetime))
        .clock(Arc::clone(&shared))
        .sweep_interval(None)
        .build();
    let users = UserDirectory::new()
        .with_cost(HashCost::insecure_fast_for_tests())
        .with_user("alice", "pw")
        .expect("test user");
    let auth = CompositeAuthenticator::new(PasswordAuthenticator::new(users), SamlAuthenticator::new(verifier));
    Cis::new(store, auth, shared)
}
