//! SAML bearer tokens at `Session.create`: the valid token, then every
//! adversarial case of saml.md, each refused by the verifier for its own
//! reason and answered by the Session service with the exact 401 body.

mod saml_support;

use std::time::Duration;

use http::{Request, StatusCode};
use saml_support::*;
use tower::ServiceExt;
use tower_cis::auth::saml::{SamlErrorKind, SamlVerifier};
use tower_cis::store::Resolution;
use tower_cis::{ManualClock, SessionId, SessionStore};

const UNAUTHENTICATED_MODERN: &str = r#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}"#;
const UNAUTHENTICATED_LEGACY: &str = r#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// POSTs a create with these `Authorization` values; returns status and body.
async fn create(cis: &TestCis, path: &str, authorization: &[&str]) -> (StatusCode, String) {
    let mut request = Request::post(path);
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = cis.session_service().oneshot(request.body(String::new()).unwrap()).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Asserts that the verifier refuses `xml` for `kind`, and that the Session
/// service answers it, over SIGN, with the exact modern 401.
async fn refused_with(verifier: SamlVerifier, clock: &ManualClock, xml: &str, kind: SamlErrorKind) {
    let error = verifier.verify(xml).expect_err("the token must be refused");
    assert_eq!(error.kind(), kind, "{error}");
    let cis = cis(verifier, clock, DAY);
    let (status, body) = create(&cis, "/api/session", &[&sign_header(xml)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHENTICATED_MODERN);
    assert_eq!(cis.store().stats().await.unwrap().sessions, 0);
}

async fn refused(xml: &str, kind: SamlErrorKind) {
    let clock = ManualClock::new(T0);
    refused_with(verifier(&clock), &clock, xml, kind).await;
}

/// Proves a tampered or adversarial token still carries a signature that
/// verifies cryptographically (permissive bergshamra, STS key), so that only
/// the policy under test can refuse it.
fn cryptographically_valid(xml: &str) -> bool {
    let mut keys = bergshamra_keys::KeysManager::new();
    keys.add_key(bergshamra_keys::loader::load_x509_cert_pem(STS_CERT.as_bytes()).unwrap());
    let context = bergshamra_dsig::DsigContext::new_permissive(keys);
    let result = bergshamra_dsig::verify::verify(&context, xml);
    eprintln!("permissive verification: {result:?}");
    result.is_ok_and(|result| result.is_valid())
}

// --- The valid token -------------------------------------------------------

#[tokio::test]
async fn valid_token_creates_a_session_capped_by_the_token() {
    let clock = ManualClock::new(T0);
    let token = Token::default();
    let xml = token.signed();
    let assertion = verifier(&clock).verify(&xml).unwrap();
    assert_eq!(assertion.subject, ADMIN);
    assert_eq!(assertion.issuer, ISSUER);
    assert_eq!(assertion.groups, vec![ADMINS.to_owned(), "vsphere.local\\Everyone".to_owned()]);
    assert_eq!(assertion.not_on_or_after, token.not_on_or_after);

    let cis = cis(verifier(&clock), &clock, DAY);
    let (status, body) = create(&cis, "/api/session", &[&sign_header(&xml)]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = SessionId::parse(body.trim_matches('"')).unwrap();
    let Resolution::Active(session) = cis.store().resolve(&id).await.unwrap() else { panic!("no session") };
    assert_eq!(session.user(), ADMIN);
    assert!(session.principal().is_member_of(ADMINS));
    // min(now + 24 h, NotOnOrAfter) = NotOnOrAfter.
    assert_eq!(session.deadline(), token.not_on_or_after);
    clock.set(token.not_on_or_after);
    assert!(matches!(cis.store().resolve(&id).await.unwrap(), Resolution::Expired | Resolution::Unknown));
}

#[tokio::test]
async fn max_lifetime_caps_a_longer_token() {
    let clock = ManualClock::new(T0);
    let xml = Token::default().signed();
    let cis = cis(verifier(&clock), &clock, Duration::from_secs(120));
    let (status, body) = create(&cis, "/api/session", &[&sign_header(&xml)]).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = SessionId::parse(body.trim_matches('"')).unwrap();
    let Resolution::Active(session) = cis.store().resolve(&id).await.unwrap() else { panic!("no session") };
    assert_eq!(session.deadline(), T0.saturating_add(Duration::from_secs(120)));
}

#[tokio::test]
async fn legacy_create_takes_sign_too() {
    let clock = ManualClock::new(T0);
    let cis = cis(verifier(&clock), &clock, DAY);
    let (status, body) =
        create(&cis, "/rest/com/vmware/cis/session", &[&sign_header(&Token::default().signed())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("{\"value\":\""), "{body}");
    let forged = Token { name_id: "root@evil".into(), ..Token::default() }.unsigned();
    let (status, body) = create(&cis, "/rest/com/vmware/cis/session", &[&sign_header(&forged)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHENTICATED_LEGACY);
}

#[tokio::test]
async fn basic_still_works_beside_sign() {
    let clock = ManualClock::new(T0);
    let cis = cis(verifier(&clock), &clock, DAY);
    let (status, _) = create(&cis, "/api/session", &["Basic YWxpY2U6cHc="]).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn token_re_serialised_with_extra_namespaces_on_the_root_is_accepted() {
    // lxml's tostring() copies in-scope declarations of the WS-Trust response.
    let clock = ManualClock::new(T0);
    let xml = Token::default().signed().replacen(
        "<saml2:Assertion ",
        "<saml2:Assertion xmlns:wst=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\" \
         xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
        1,
    );
    assert_eq!(verifier(&clock).verify(&xml).unwrap().subject, ADMIN);
}

#[tokio::test]
async fn configured_issuer_and_audience_accept_matching_tokens() {
    let clock = ManualClock::new(T0);
    let xml = Token { audience: Some("vapi".into()), ..Token::default() }.signed();
    let verifier = verifier(&clock).with_issuer(ISSUER).with_audience("vapi");
    assert_eq!(verifier.verify(&xml).unwrap().subject, ADMIN);
}

// --- Tampering and trust ---------------------------------------------------

#[tokio::test]
async fn tampered_name_id_is_refused() {
    let xml = Token::default().signed().replace(ADMIN, "root@VSPHERE.LOCAL");
    refused(&xml, SamlErrorKind::BadSignature).await;
}

#[tokio::test]
async fn tampered_groups_are_refused() {
    let xml = Token::default().signed().replace("vsphere.local\\Everyone", "vsphere.local\\Administrators2");
    refused(&xml, SamlErrorKind::BadSignature).await;
}

#[tokio::test]
async fn token_signed_by_an_untrusted_key_claiming_the_trusted_certificate_is_refused() {
    // Wrong certificate: signed by another key, KeyInfo names the STS certificate.
    let xml = Token { signing_key: ATTACKER_KEY, key_info_cert: STS_CERT, ..Token::default() }.signed();
    refused(&xml, SamlErrorKind::BadSignature).await;
}

#[tokio::test]
async fn certificate_only_in_key_info_is_not_trusted() {
    let xml = Token { signing_key: ATTACKER_KEY, key_info_cert: ATTACKER_CERT, ..Token::default() }.signed();
    assert!(cryptographically_valid_with(&xml, ATTACKER_CERT));
    refused(&xml, SamlErrorKind::BadSignature).await;
}

fn cryptographically_valid_with(xml: &str, cert: &str) -> bool {
    let mut keys = bergshamra_keys::KeysManager::new();
    keys.add_key(bergshamra_keys::loader::load_x509_cert_pem(cert.as_bytes()).unwrap());
    let context = bergshamra_dsig::DsigContext::new_permissive(keys);
    bergshamra_dsig::verify::verify(&context, xml).is_ok_and(|result| result.is_valid())
}

#[tokio::test]
async fn unsigned_token_is_refused() {
    refused(&Token::default().unsigned(), SamlErrorKind::Unsigned).await;
}

#[tokio::test]
async fn no_trusted_certificate_refuses_everything() {
    let clock = ManualClock::new(T0);
    let verifier = SamlVerifier::new().with_clock(std::sync::Arc::new(clock.clone()));
    refused_with(verifier, &clock, &Token::default().signed(), SamlErrorKind::NoTrustedCertificate).await;
}

// --- Signature wrapping ------------------------------------------------------

/// The genuine signed assertion, its signature inside, moved into `Advice` of
/// an unsigned outer assertion that names the attacker (XSW): the signature
/// still verifies where it now is.
#[tokio::test]
async fn signature_wrapping_via_advice_is_refused() {
    let genuine = Token::default().signed();
    let inner = genuine.replacen(
        "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
        "<saml2:Assertion",
        1,
    );
    let outer =
        Token { id: "_evil".into(), name_id: "root@VSPHERE.LOCAL".into(), advice: Some(inner), ..Token::default() };
    let wrapped = outer.unsigned();
    assert!(cryptographically_valid(&wrapped), "the moved signature must still verify");
    refused(&wrapped, SamlErrorKind::MultipleAssertions).await;
    // Signed by the STS over the outer ID would need the STS key; with the
    // genuine signature copied to the outer position instead, the reference
    // names the inner assertion: refused too.
    let signature = &genuine[genuine.find("<ds:Signature").unwrap()..genuine.find("</ds:Signature>").unwrap() + 15];
    let at = wrapped.find("</saml2:Issuer>").unwrap() + "</saml2:Issuer>".len();
    let both = format!("{}{}{}", &wrapped[..at], signature, &wrapped[at..]);
    refused(&both, SamlErrorKind::MultipleAssertions).await;
}

/// A second, unsigned assertion after the genuine one (as a sibling is not
/// possible in XML, inside an element of the genuine one is the only place).
#[tokio::test]
async fn second_assertion_is_refused() {
    let token = Token::default();
    let second = Token { id: "_second".into(), name_id: "root@VSPHERE.LOCAL".into(), ..Token::default() }
        .unsigned()
        .replacen(" xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"", "", 1);
    let xml = token.signed().replacen("</saml2:Assertion>", &format!("{second}</saml2:Assertion>"), 1);
    refused(&xml, SamlErrorKind::MultipleAssertions).await;
}

#[tokio::test]
async fn reference_to_another_element_is_refused() {
    // A reference that does not name the root assertion.
    let token = Token { reference_uri: Some("#_subject".into()), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
}

#[tokio::test]
async fn duplicate_ids_are_refused() {
    let token = Token::default();
    let xml = token.signed().replacen("<saml2:Subject>", &format!("<saml2:Subject ID=\"{}\">", token.id), 1);
    refused(&xml, SamlErrorKind::DuplicateId).await;
}

// --- Comments and processing instructions ----------------------------------

/// `Administrator@VSPHERE.LOCAL<!---->.evil`: exclusive c14n drops the
/// comment, so the signature over `…LOCAL.evil` still verifies, while a naive
/// reader of the first text node would log in as the administrator.
#[tokio::test]
async fn comment_injection_in_name_id_is_refused() {
    let token = Token { name_id: format!("{ADMIN}.evil.example"), ..Token::default() };
    let xml = token.signed().replace(&format!("{ADMIN}.evil.example"), &format!("{ADMIN}<!---->.evil.example"));
    assert!(cryptographically_valid(&xml), "the comment must not break the signature");
    refused(&xml, SamlErrorKind::CommentOrInstruction).await;
}

#[tokio::test]
async fn processing_instruction_in_name_id_is_refused() {
    let token = Token { name_id: format!("{ADMIN}.evil.example"), ..Token::default() };
    let xml = token.signed().replace(&format!("{ADMIN}.evil.example"), &format!("{ADMIN}<?x y?>.evil.example"));
    refused(&xml, SamlErrorKind::CommentOrInstruction).await;
}

#[tokio::test]
async fn comment_injection_in_a_group_is_refused() {
    let token = Token { groups: vec![format!("{ADMINS}.evil")], ..Token::default() };
    let xml = token.signed().replace(&format!("{ADMINS}.evil"), &format!("{ADMINS}<!---->.evil"));
    refused(&xml, SamlErrorKind::CommentOrInstruction).await;
}

// --- Algorithm and transform allow-list --------------------------------------

#[tokio::test]
async fn with_comments_canonicalization_is_refused() {
    let with_comments = format!("{EXC_C14N}WithComments");
    let token = Token { c14n_method: with_comments.clone(), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
    let transforms = format!(
        "<ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform><ds:Transform Algorithm=\"{with_comments}\"></ds:Transform>"
    );
    let token = Token { transforms, ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
}

#[tokio::test]
async fn sha1_is_refused() {
    let token = Token { signature_method: RSA_SHA1.into(), digest_method: SHA1.into(), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
    let digest_only = Token { digest_method: SHA1.into(), ..Token::default() };
    refused(&digest_only.signed(), SamlErrorKind::SignaturePolicy).await;
}

#[tokio::test]
async fn xpath_transform_is_refused() {
    let transforms = format!(
        "<ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform>\
         <ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>1</ds:XPath></ds:Transform>{}",
        exc_c14n_transform()
    );
    let token = Token { transforms, ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
}

#[tokio::test]
async fn hmac_signature_method_is_refused() {
    let token = Token { signature_method: "http://www.w3.org/2000/09/xmldsig#hmac-sha1".into(), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
}

#[tokio::test]
async fn missing_enveloped_transform_is_refused() {
    let token = Token { transforms: exc_c14n_transform(), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::SignaturePolicy).await;
}

// --- Parser attacks and sizes ---------------------------------------------------

#[tokio::test]
async fn doctype_is_refused() {
    let xml = format!("<!DOCTYPE saml2:Assertion>{}", Token::default().signed());
    refused(&xml, SamlErrorKind::Doctype).await;
}

#[tokio::test]
async fn entity_declaration_is_refused() {
    let token = Token { name_id: "&admin;".into(), ..Token::default() };
    let xml = format!(
        "<!DOCTYPE saml2:Assertion [<!ENTITY admin \"{ADMIN}\">]>{}",
        token.signed().replace("&amp;admin;", "&admin;")
    );
    refused(&xml, SamlErrorKind::Doctype).await;
}

#[tokio::test]
async fn oversized_token_is_refused() {
    let token = Token { groups: (0..3000).map(|i| format!("vsphere.local\\group-{i}")).collect(), ..Token::default() };
    let xml = token.signed();
    assert!(xml.len() > tower_cis::auth::saml::DEFAULT_MAX_TOKEN_LEN);
    refused(&xml, SamlErrorKind::TooLarge).await;
}

#[tokio::test]
async fn gzip_bomb_is_refused() {
    use base64::Engine as _;
    let clock = ManualClock::new(T0);
    let cis = cis(verifier(&clock), &clock, DAY);
    // 10 MB of one byte compresses to ~10 kB: ratio ~1000.
    let bomb = base64::engine::general_purpose::STANDARD.encode(gzip(&vec![b' '; 10 << 20]));
    let (status, body) = create(&cis, "/api/session", &[&format!("SIGN token=\"{bomb}\"")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHENTICATED_MODERN);
    let error = tower_cis::auth::sign_from_headers(&{
        let mut headers = http::HeaderMap::new();
        headers.append("authorization", format!("SIGN token=\"{bomb}\"").parse().unwrap());
        headers
    })
    .unwrap_err();
    assert!(matches!(error, tower_cis::auth::SignError::RatioExceeded | tower_cis::auth::SignError::TooLarge));
}

// --- Time window ----------------------------------------------------------------

#[tokio::test]
async fn expired_token_is_refused() {
    let token = Token {
        not_before: T0.saturating_sub(Duration::from_secs(1200)),
        not_on_or_after: T0.saturating_sub(Duration::from_secs(600)),
        confirmation_until: Some(T0.saturating_sub(Duration::from_secs(600))),
        ..Token::default()
    };
    refused(&token.signed(), SamlErrorKind::Expired).await;
}

#[tokio::test]
async fn not_yet_valid_token_is_refused() {
    let token = Token {
        not_before: T0.saturating_add(Duration::from_secs(600)),
        not_on_or_after: T0.saturating_add(Duration::from_secs(1200)),
        confirmation_until: Some(T0.saturating_add(Duration::from_secs(1200))),
        ..Token::default()
    };
    refused(&token.signed(), SamlErrorKind::NotYetValid).await;
}

#[tokio::test]
async fn expired_bearer_confirmation_is_refused() {
    let token = Token { confirmation_until: Some(T0.saturating_sub(Duration::from_secs(61))), ..Token::default() };
    refused(&token.signed(), SamlErrorKind::Expired).await;
}

/// `NotBefore - skew <= now`: accepted exactly at the boundary, refused 1 ms before.
#[tokio::test]
async fn skew_boundary_at_not_before() {
    let skew = Duration::from_secs(60);
    let token = Token {
        not_before: T0.saturating_add(skew),
        not_on_or_after: T0.saturating_add(Duration::from_secs(600)),
        ..Token::default()
    };
    let xml = token.signed();
    let clock = ManualClock::new(T0);
    assert_eq!(verifier(&clock).verify(&xml).unwrap().subject, ADMIN);
    let clock = ManualClock::new(T0.saturating_sub(Duration::from_millis(1)));
    refused_with(verifier(&clock), &clock, &xml, SamlErrorKind::NotYetValid).await;
}

/// `now < NotOnOrAfter + skew`: accepted 1 ms before the boundary, refused at it.
#[tokio::test]
async fn skew_boundary_at_not_on_or_after() {
    let skew = Duration::from_secs(60);
    let until = T0.saturating_sub(skew).saturating_add(Duration::from_millis(1));
    let token = Token {
        not_before: T0.saturating_sub(Duration::from_secs(600)),
        not_on_or_after: until,
        confirmation_until: Some(until),
        ..Token::default()
    };
    let xml = token.signed();
    let clock = ManualClock::new(T0);
    assert_eq!(verifier(&clock).verify(&xml).unwrap().subject, ADMIN);
    let clock = ManualClock::new(T0.saturating_add(Duration::from_millis(1)));
    refused_with(verifier(&clock), &clock, &xml, SamlErrorKind::Expired).await;
}

#[tokio::test]
async fn lax_timestamps_are_refused() {
    // xs:dateTime without a zone is ambiguous: refused rather than guessed.
    let zoned = format!("NotOnOrAfter=\"{}\"", Token::default().not_on_or_after);
    let unzoned = zoned.replace(".110Z\"", ".110\"");
    let token = Token { edit: Some((zoned, unzoned)), ..Token::default() };
    assert!(cryptographically_valid(&token.signed()));
    refused(&token.signed(), SamlErrorKind::BadClaims).await;
}

// --- Issuer, audience, confirmation ----------------------------------------------

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let clock = ManualClock::new(T0);
    let token = Token { issuer: "https://evil.example/websso/SAML2/Metadata/vsphere.local".into(), ..Token::default() };
    refused_with(verifier(&clock).with_issuer(ISSUER), &clock, &token.signed(), SamlErrorKind::WrongIssuer).await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let clock = ManualClock::new(T0);
    let token = Token { audience: Some("another-service".into()), ..Token::default() };
    refused_with(verifier(&clock).with_audience("vapi"), &clock, &token.signed(), SamlErrorKind::WrongAudience).await;
    let unrestricted = Token::default();
    refused_with(verifier(&clock).with_audience("vapi"), &clock, &unrestricted.signed(), SamlErrorKind::WrongAudience)
        .await;
}

#[tokio::test]
async fn holder_of_key_token_presented_as_bearer_is_refused() {
    let token = Token { method: HOLDER_OF_KEY.into(), confirmation_until: None, ..Token::default() };
    refused(&token.signed(), SamlErrorKind::HolderOfKey).await;
}

// --- Malformed SIGN headers --------------------------------------------------------

#[tokio::test]
async fn malformed_sign_headers_get_a_clean_401() {
    let clock = ManualClock::new(T0);
    let cis = cis(verifier(&clock), &clock, DAY);
    let valid = sign_header(&Token::default().signed());
    let token_value = valid.trim_start_matches("SIGN ");
    let cases: Vec<Vec<String>> = vec![
        vec!["SIGN".into()],
        vec!["SIGN token=".into()],
        vec!["SIGN token=\"unterminated".into()],
        vec!["SIGN token=\"not base64!\"".into()],
        vec!["SIGN token=\"PGE+PC9hPg==\"".into()], // base64 of plain XML, not gzip
        vec![format!("SIGN {token_value}, {token_value}")],
        vec![format!("SIGN {token_value},")],
        vec![format!("SIGN {token_value} trailing")],
        vec![valid.clone(), "Basic YWxpY2U6cHc=".into()],
        vec!["SIGN nonce=\"1:2\"".into()],
    ];
    for headers in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (status, body) = create(&cis, "/api/session", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(body, UNAUTHENTICATED_MODERN, "{headers:?}");
    }
    // The same token split across two headers is fine.
    let (status, _) = create(&cis, "/api/session", &["SIGN realm=\"x\"", token_value]).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn holder_of_key_sign_request_is_refused_with_a_clear_message() {
    let clock = ManualClock::new(T0);
    let cis = cis(verifier(&clock), &clock, DAY);
    let valid = sign_header(&Token::default().signed());
    let hok = format!("{valid}, signature_alg=\"RSA-SHA256\", signature=\"AAAA\", nonce=\"1:2\", bodyhash=\"AAAA\"");
    let (status, body) = create(&cis, "/api/session", &[&hok]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"error_type\":\"UNAUTHENTICATED\""), "{body}");
    assert!(body.contains("com.vmware.cis.session.authentication.holder_of_key_unsupported"), "{body}");
    assert!(body.contains("Holder-of-key SAML tokens are not supported"), "{body}");
}
