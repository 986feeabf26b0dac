//! SAML token intake: `SamlVerifier::verify` on arbitrary XML. It trusts the
//! test STS certificate and its clock stands inside the seed tokens' validity,
//! so mutations of a genuine token reach every check. It must never panic, and
//! whatever it accepts must say exactly what the genuine token says: a
//! mutation may change what the signature does not cover (nothing of
//! substance), never the claims.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower_cis::auth::saml::SamlVerifier;
use tower_cis::{ManualClock, Timestamp};

/// The clock of tests/saml_support, where the seeds were minted.
const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
const STS_CERT: &str = include_str!("../../tests/saml_support/sts-cert.pem");
const ISSUER: &str = "https://vc.example.test/websso/SAML2/Metadata/vsphere.local";
const ADMIN: &str = "Administrator@VSPHERE.LOCAL";
const GROUPS: [&str; 2] = ["vsphere.local\\Administrators", "vsphere.local\\Everyone"];
const ID: &str = "_8f5e1b6c-2d3a-4b7e-9c1d-0a2b3c4d5e6f";

static VERIFIER: LazyLock<SamlVerifier> = LazyLock::new(|| {
    SamlVerifier::new()
        .with_trusted_certificates_pem(STS_CERT)
        .expect("the test STS certificate")
        .with_clock(Arc::new(ManualClock::new(T0)))
        .with_clock_skew(Duration::from_secs(60))
});

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let Ok(assertion) = VERIFIER.verify(xml) else { return };
    assert_eq!(assertion.subject, ADMIN, "accepted a token for another subject");
    assert_eq!(assertion.issuer, ISSUER);
    assert_eq!(assertion.id, ID);
    assert_eq!(assertion.groups, GROUPS);
    assert_eq!(assertion.not_before, T0.saturating_sub(Duration::from_secs(60)));
    assert_eq!(assertion.not_on_or_after, T0.saturating_add(Duration::from_secs(600)));
});
