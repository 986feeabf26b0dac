//! A development Secure Token Service: enough of vCenter's WS-Trust STS for
//! VMware's own client (`pyVim.sso.SsoAuthenticator.get_bearer_saml_assertion`
//! of PyPI `pyvmomi`) to obtain a bearer token for a user of the server's
//! directory.
//!
//! It answers `POST /sts/STSService/vsphere.local` (an RST Issue request with
//! a WS-Security `UsernameToken`) with a SAML 2.0 assertion signed by an RSA
//! key generated at start, whose certificate the server also trusts. It is a
//! development aid: one key, no key rotation, no holder-of-key, no renewal.
//!
//! pyVmomi talks to an STS over HTTPS only, except for one plain-http address:
//! `http://localhost:1080` (the vCenter "sidecar"; `is_sidecar_request` in
//! pyVim/sso.py). Serve the STS there, or over `--tls` anywhere.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bergshamra_dsig::DsigContext;
use bergshamra_keys::KeysManager;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use tower_cis::auth::{AuthErrorKind, Authenticator, ClientInfo, Credential};
use tower_cis::{SharedClock, Timestamp};

/// Where vCenter's STS answers, and so this one.
pub const STS_PATH: &str = "/sts/STSService/vsphere.local";
/// The one plain-http STS address pyVmomi accepts (host and port, exactly).
pub const PYVMOMI_PLAIN_HTTP_ADDRESS: &str = "localhost:1080";
/// The longest token the dev STS issues, whatever the request asks for.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The largest request accepted.
const MAX_REQUEST_LEN: usize = 64 * 1024;

const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const WST: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const BEARER_KEY_TYPE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer";
const GROUP_IDENTITY: &str = "http://rsa.com/schemas/attr-names/2009/01/GroupIdentity";

/// The dev STS: authenticates users with `A` and signs bearer tokens.
pub struct DevSts<A> {
    users: A,
    clock: SharedClock,
    issuer: String,
    keys: KeysManager,
    certificate_pem: String,
    certificate_base64: String,
}

impl<A: Authenticator> DevSts<A> {
    /// Generates a 2048-bit RSA signing key and a self-signed certificate for
    /// it; tokens name `issuer` and are checked against `users`.
    pub fn generate(users: A, clock: SharedClock, issuer: String) -> Result<Self, Box<dyn std::error::Error>> {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
        let key_pem = key.to_pkcs8_pem(LineEnding::LF)?;
        let signing = rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "tower-cis development STS");
        let certificate = params.self_signed(&signing)?;
        let mut keys = KeysManager::new();
        keys.add_key(bergshamra_keys::loader::load_rsa_private_pem(key_pem.as_bytes())?);
        use base64::Engine as _;
        let certificate_base64 = base64::engine::general_purpose::STANDARD.encode(certificate.der());
        Ok(DevSts { users, clock, issuer, keys, certificate_pem: certificate.pem(), certificate_base64 })
    }

    /// The signing certificate (PEM), for the server's SAML verifier and for
    /// clients that pin it.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The STS route, to merge into the application's router (outside the
    /// session layer: the STS is how a client gets its first credential).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route(STS_PATH, post(issue::<A>)).with_state(self)
    }

    /// Answers one WS-Trust request body.
    pub async fn respond(&self, body: &[u8], client: &ClientInfo) -> Response {
        let request = match parse_request(body) {
            Ok(request) => request,
            Err(fault) => return fault.response(),
        };
        let credential = Credential::Basic { user: &request.user, password: &request.password };
        let principal = match self.users.authenticate(credential, client).await {
            Ok(authenticated) => authenticated.into_parts().0,
            Err(error) if error.kind() == AuthErrorKind::Unavailable => {
                return Fault::new("wst:RequestFailed", "The user directory is unavailable").response();
            }
            Err(error) => {
                tracing::info!(user = request.user, %error, "dev STS: authentication failed");
                return Fault::new("wst:FailedAuthentication", "Authentication failed: invalid credentials").response();
            }
        };
        let now = self.clock.now();
        let lifetime = request.lifetime.unwrap_or(Duration::from_secs(600)).min(MAX_TOKEN_LIFETIME);
        let until = now.saturating_add(lifetime);
        let groups: Vec<&str> = principal.groups().collect();
        let assertion = match self.sign(principal.name(), &groups, now, until) {
            Ok(assertion) => assertion,
            Err(error) => {
                tracing::warn!(%error, "dev STS: signing failed");
                return Fault::new("wst:RequestFailed", "The token could not be signed").response();
            }
        };
        tracing::info!(user = principal.name(), %until, "dev STS: bearer token issued");
        let body = format!(
            "<S:Envelope xmlns:S=\"{SOAP}\"><S:Body><wst:RequestSecurityTokenResponseCollection xmlns:wst=\"{WST}\">\
             <wst:RequestSecurityTokenResponse><wst:TokenType>urn:oasis:names:tc:SAML:2.0:assertion</wst:TokenType>\
             <wst:Lifetime><wsu:Created xmlns:wsu=\"{WSU}\">{now}</wsu:Created>\
             <wsu:Expires xmlns:wsu=\"{WSU}\">{until}</wsu:Expires></wst:Lifetime>\
             <wst:RequestedSecurityToken>{assertion}</wst:RequestedSecurityToken>\
             <wst:Renewing Allow=\"false\" OK=\"false\"/><wst:Delegatable>false</wst:Delegatable>\
             <wst:KeyType>{BEARER_KEY_TYPE}</wst:KeyType>\
             <wst:SignatureAlgorithm>http://www.w3.org/2001/04/xmldsig-more#rsa-sha256</wst:SignatureAlgorithm>\
             </wst:RequestSecurityTokenResponse></wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>"
        );
        xml_response(StatusCode::OK, body)
    }

    /// A vSphere-shaped bearer assertion for `name`, signed by bergshamra.
    fn sign(&self, name: &str, groups: &[&str], now: Timestamp, until: Timestamp) -> Result<String, String> {
        let id = random_id().map_err(|e| e.to_string())?;
        let issuer = escape(&self.issuer);
        let name = escape(name);
        let group_values: String = groups
            .iter()
            .map(|g| format!("<saml2:AttributeValue xsi:type=\"xs:string\">{}</saml2:AttributeValue>", escape(g)))
            .collect();
        let attributes = if groups.is_empty() {
            String::new()
        } else {
            format!(
                "<saml2:AttributeStatement><saml2:Attribute FriendlyName=\"Groups\" Name=\"{GROUP_IDENTITY}\" \
                 NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:uri\">{group_values}</saml2:Attribute>\
                 </saml2:AttributeStatement>"
            )
        };
        let template = format!(
            "<saml2:Assertion xmlns:saml2=\"{SAML}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ID=\"{id}\" IssueInstant=\"{now}\" Version=\"2.0\">\
             <saml2:Issuer Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:entity\">{issuer}</saml2:Issuer>\
             <ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
             <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
             <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
             <ds:Reference URI=\"#{id}\"><ds:Transforms>\
             <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
             <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">\
             <ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"xs xsi\"/>\
             </ds:Transform></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue></ds:DigestValue>\
             </ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>\
             <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
             </ds:Signature>\
             <saml2:Subject><saml2:NameID Format=\"http://schemas.xmlsoap.org/claims/UPN\">{name}</saml2:NameID>\
             <saml2:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml2:SubjectConfirmationData NotOnOrAfter=\"{until}\"/></saml2:SubjectConfirmation></saml2:Subject>\
             <saml2:Conditions NotBefore=\"{now}\" NotOnOrAfter=\"{until}\">\
             <saml2:ProxyRestriction Count=\"10\"/></saml2:Conditions>\
             <saml2:AuthnStatement AuthnInstant=\"{now}\"><saml2:AuthnContext>\
             <saml2:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport\
             </saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement>{attributes}\
             </saml2:Assertion>",
            cert = self.certificate_base64,
        );
        let mut context = DsigContext::new(self.keys.clone());
        context.trusted_keys_only = true;
        bergshamra_dsig::sign::sign(&context, &template).map_err(|e| e.to_string())
    }
}

async fn issue<A: Authenticator>(
    State(sts): State<Arc<DevSts<A>>>,
    client: Option<axum::Extension<ClientInfo>>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_REQUEST_LEN {
        return Fault::new("wst:InvalidRequest", "The request is too large").response();
    }
    let client = client.map(|axum::Extension(client)| client).unwrap_or_default();
    sts.respond(&body, &client).await
}

/// What the dev STS reads from an RST Issue request.
struct IssueRequest {
    user: String,
    password: String,
    lifetime: Option<Duration>,
}

fn parse_request(body: &[u8]) -> Result<IssueRequest, Fault> {
    let invalid = |why: &'static str| Fault::new("wst:InvalidRequest", why);
    let text = std::str::from_utf8(body).map_err(|_| invalid("The request is not UTF-8"))?;
    let doc = uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_max_depth(32)
        .parse(text)
        .map_err(|_| invalid("The request is not well-formed XML"))?;
    let text_of = |ns: &str, local: &str| {
        doc.get_elements_by_tag_name_ns(ns, local).first().map(|&node| doc.text_content_deep(node))
    };
    if text_of(WST, "RequestType").as_deref().map(str::trim)
        != Some("http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue")
    {
        return Err(invalid("Only the Issue request is supported"));
    }
    if let Some(key_type) = text_of(WST, "KeyType")
        && key_type.trim() != BEARER_KEY_TYPE
    {
        return Err(Fault::new("wst:InvalidRequest", "The development STS issues bearer tokens only"));
    }
    let user = text_of(WSSE, "Username")
        .ok_or(Fault::new("wst:FailedAuthentication", "The development STS authenticates by UsernameToken only"))?;
    let password = text_of(WSSE, "Password").unwrap_or_default();
    // The requested token lifetime: Lifetime/Created and Expires of the RST
    // body (the header's Timestamp bounds the request, not the token).
    let lifetime = doc.get_elements_by_tag_name_ns(WST, "Lifetime").first().and_then(|&lifetime| {
        let pick = |local: &str| {
            doc.descendants(lifetime)
                .into_iter()
                .find(|&n| doc.element(n).is_some_and(|e| e.matches_name_ns(WSU, local)))
                .and_then(|n| Timestamp::parse_rfc3339(doc.text_content_deep(n).trim()))
        };
        match (pick("Created"), pick("Expires")) {
            (Some(from), Some(to)) if to > from => Some(to.duration_since(from)),
            _ => None,
        }
    });
    Ok(IssueRequest { user: user.trim().to_owned(), password, lifetime })
}

/// A SOAP fault, as pyVmomi reads it: HTTP 500, exactly two text nodes
/// (faultcode, faultstring).
struct Fault {
    code: &'static str,
    text: &'static str,
}

impl Fault {
    fn new(code: &'static str, text: &'static str) -> Self {
        Fault { code, text }
    }

    fn response(&self) -> Response {
        let body = format!(
            "<S:Envelope xmlns:S=\"{SOAP}\"><S:Body><S:Fault xmlns:wst=\"{WST}\"><faultcode>{}</faultcode>\
             <faultstring>{}</faultstring></S:Fault></S:Body></S:Envelope>",
            self.code, self.text
        );
        xml_response(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `_` and 32 random hex digits: an xs:ID.
fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(std::iter::once("_".to_owned()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect())
}
