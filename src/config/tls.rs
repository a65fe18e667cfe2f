//! The certificate and key of the SIP over TLS listener (`ext.tls_cert`,
//! `ext.tls_key`): read from PEM files, checked (the key matches the
//! leaf certificate, the leaf is valid now) and made into a rustls server
//! configuration. Used by the configuration check, at start and on every
//! reload, so a certificate that does not load is refused before it could
//! replace a working one.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Loads and checks `cert` (a PEM chain, leaf first) and `key` (a PEM
/// private key: PKCS#8, PKCS#1 or SEC1). The error says which file and
/// what is wrong.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    load_at(cert, key, OffsetDateTime::now_utc())
}

/// Reads the CA certificates of a peer site (`sites.*.ca_file`): the
/// PEM text, checked to hold at least one certificate that parses.
pub fn load_ca(path: &Path) -> Result<Vec<u8>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    if let Some(bad) = certs.iter().position(|c| validity(c).is_none()) {
        return Err(format!(
            "CA file {}: certificate {} does not parse",
            path.display(),
            bad + 1
        ));
    }
    Ok(pem)
}

fn load_at(
    cert: &Path,
    key: &Path,
    now: OffsetDateTime,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("cannot read certificate file {}: {e}", cert.display()))?;
    let key_pem =
        std::fs::read(key).map_err(|e| format!("cannot read key file {}: {e}", key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate file {}: {e}", cert.display()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("certificate file {} holds no certificate", cert.display()))?;
    let (not_before, not_after) = validity(leaf).ok_or_else(|| {
        format!(
            "certificate file {}: the first certificate does not parse",
            cert.display()
        )
    })?;
    if now > not_after {
        return Err(format!(
            "certificate {} expired on {}",
            cert.display(),
            not_after.date()
        ));
    }
    if now < not_before {
        return Err(format!(
            "certificate {} is not valid before {}",
            cert.display(),
            not_before.date()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("key file {}: {e}", key.display()))?;
    // ring, as lettre and reqwest use (see docs/decisions.md).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not go together: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// `notBefore` and `notAfter` of an X.509 certificate (RFC 5280 §4.1):
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE { Time,
/// Time }, … } … }`.
fn validity(cert: &[u8]) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let (tag, certificate, _) = der(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = der(certificate)?;
    if tag != 0x30 {
        return None;
    }
    // [0] EXPLICIT version, when present.
    let (tag, _, rest) = der(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        tbs = der(tbs)?.2;
    }
    let (tag, validity, _) = der(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, v1, rest) = der(validity)?;
    let (t2, v2, _) = der(rest)?;
    Some((der_time(t1, v1)?, der_time(t2, v2)?))
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn der_time(tag: u8, v: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = digits.get(..2)?.parse().ok()?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19xx.
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let month = Month::try_from(num(0)?).ok()?;
    let date = Date::from_calendar_date(year, month, num(2)?).ok()?;
    let time = Time::from_hms(num(4)?, num(6)?, num(8)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_parse() {
        let t = der_time(0x17, b"250102030405Z").expect("utc time");
        assert_eq!(t.to_string(), "2025-01-02 3:04:05.0 +00:00:00");
        let t = der_time(0x17, b"991231235959Z").expect("utc time");
        assert_eq!(t.year(), 1999);
        let t = der_time(0x18, b"20500101000000Z").expect("generalized time");
        assert_eq!(t.year(), 2050);
        assert!(der_time(0x17, b"2501020304Z").is_none());
        assert!(der_time(0x17, b"251302030405Z").is_none());
        assert!(der_time(0x05, b"250102030405Z").is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x02\x30\x00",
        ] {
            assert!(validity(input).is_none());
        }
    }

    /// A self-signed certificate valid for 2 days, made by `openssl`.
    fn openssl_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl (Debian package openssl; scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    }

    #[test]
    fn a_certificate_loads_until_it_expires_and_only_with_its_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = openssl_cert(dir.path(), "a");
        let (_, other_key) = openssl_cert(dir.path(), "b");
        let now = OffsetDateTime::now_utc();
        assert!(load_at(&cert, &key, now).is_ok());
        let e = load_at(&cert, &key, now + time::Duration::days(3)).expect_err("expired");
        assert!(e.contains("expired on"), "{e}");
        let e = load_at(&cert, &key, now - time::Duration::days(1)).expect_err("not yet");
        assert!(e.contains("not valid before"), "{e}");
        let e = load_at(&cert, &other_key, now).expect_err("mismatch");
        assert!(e.contains("do not go together"), "{e}");
        let e = load_at(&key, &key, now).expect_err("a key as certificate");
        assert!(e.contains("holds no certificate"), "{e}");
        std::fs::write(dir.path().join("junk"), b"junk").expect("write");
        let e = load_at(&cert, &dir.path().join("junk"), now).expect_err("junk key");
        assert!(e.contains("key file"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let e = load_server_config(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k"))
            .expect_err("missing");
        assert!(
            e.contains("cannot read certificate file /nonexistent/c.pem"),
            "{e}"
        );
    }
}
