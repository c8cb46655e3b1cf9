//! Terminal certificates: the client certificates that let a terminal (a browser on a ward PC,
//! e.g. 「外来3番」) reach a node that requires them. Each node has its own terminal CA (ECDSA
//! P-256, made on first use); a terminal certificate is signed by it, valid
//! [`TERMINAL_CERT_DAYS`] days, and handed over as a PKCS#12 file (`.p12`) protected by a
//! one-time password, which is what browsers and the Windows certificate store import.
//! Revocation is a CRL signed by the same CA, made afresh from the list of revoked serials.
//!
//! ECDSA P-256 rather than ed25519: browsers (Chrome, Edge, Firefox) do not sign TLS handshakes
//! with ed25519 client keys.
//!
//! This module only makes and reads certificates, keys, CRLs and PKCS#12 files in memory: it
//! never stores them (the node keeps the CA's key in its encrypted database), never opens a
//! file or a connection, and never prints a key or a password.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};

/// Days a terminal certificate is valid (one year): a terminal is re-issued yearly, so a
/// certificate copied off a machine that left the hospital stops working by itself within a
/// year even if nobody revokes it, while the IT staff import a new one only once a year.
pub const TERMINAL_CERT_DAYS: i64 = 365;

/// Years the terminal CA is valid (20): longer than any appliance is kept, so no terminal
/// certificate outlives its CA and the CA never has to be replaced in service.
pub const CA_YEARS: i64 = 20;

/// Characters of a PKCS#12 file's one-time password (16 from the 55 letters and digits without
/// the look-alikes 0 O o 1 l I: about 92 bits), typed once when the file is imported.
pub const P12_PASSWORD_CHARS: usize = 16;

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// What went wrong making or reading a terminal certificate.
#[derive(Debug, thiserror::Error)]
pub enum TerminalCertError {
    #[error("端末証明書を作れません: {0}")]
    Certificate(String),
    #[error("PKCS#12 ファイルを作れません: {0}")]
    Pkcs12(String),
    #[error(
        "PKCS#12 ファイルを読めません（パスワードが違うか、端末証明書のファイルではありません）: {0}"
    )]
    Unreadable(String),
    #[error("システムの乱数生成に失敗しました: {0}")]
    Random(String),
}

fn cert_error(e: rcgen::Error) -> TerminalCertError {
    TerminalCertError::Certificate(e.to_string())
}

fn at(unix_s: i64) -> Result<time::OffsetDateTime, TerminalCertError> {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .map_err(|e| TerminalCertError::Certificate(e.to_string()))
}

/// The CA's parameters from its common name: the same name always gives the same issuer
/// (distinguished name, key identifier method, key usages), so certificates and CRLs signed
/// later name the CA exactly as its certificate does.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// A node's terminal CA: its certificate and its private key (PKCS#8). `Debug` never shows the
/// key.
#[derive(Clone)]
pub struct TerminalCa {
    /// The CA's common name, e.g. `nsdb 端末証明書CA 東京テスト病院`.
    pub common_name: String,
    /// The CA's self-signed certificate (DER).
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TerminalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalCa")
            .field("common_name", &self.common_name)
            .field("key_der", &"..")
            .finish()
    }
}

/// A terminal certificate just issued: its serial (hexadecimal), certificate and key.
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct TerminalCert {
    /// The serial number, as lowercase hexadecimal (32 characters).
    pub serial: String,
    pub cert_der: Vec<u8>,
    /// The terminal's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for TerminalCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalCert")
            .field("serial", &self.serial)
            .field("key_der", &"..")
            .finish()
    }
}

/// A revoked certificate, as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The serial number (hexadecimal).
    pub serial: String,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
}

impl TerminalCa {
    /// A new CA named `common_name`, valid from `now_s` (Unix seconds, less a day for clocks
    /// behind) for [`CA_YEARS`] years.
    pub fn create(common_name: &str, now_s: i64) -> Result<TerminalCa, TerminalCertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let mut params = ca_params(common_name);
        params.serial_number = Some(random_serial()?.1);
        params.not_before = at(now_s - 86_400)?;
        params.not_after = at(now_s + CA_YEARS * 365 * 86_400)?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(TerminalCa {
            common_name: common_name.to_string(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// The CA as it was stored: its common name, certificate and key (PKCS#8 DER).
    pub fn from_parts(common_name: String, cert_der: Vec<u8>, key_der: Vec<u8>) -> TerminalCa {
        TerminalCa {
            common_name,
            cert_der,
            key_der,
        }
    }

    /// The CA's private key (PKCS#8 DER), to be stored encrypted.
    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, TerminalCertError> {
        let key = KeyPair::try_from(self.key_der.as_slice()).map_err(cert_error)?;
        Ok(Issuer::new(ca_params(&self.common_name), key))
    }

    /// A certificate for the terminal `name` of `institution`, valid from `not_before_s` to
    /// `not_after_s` (Unix seconds), with a new ECDSA P-256 key and a random 127-bit serial. It
    /// can only authenticate a TLS client (extended key usage clientAuth).
    pub fn issue(
        &self,
        name: &str,
        institution: &str,
        not_before_s: i64,
        not_after_s: i64,
    ) -> Result<TerminalCert, TerminalCertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, institution);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let (serial, number) = random_serial()?;
        params.serial_number = Some(number);
        params.not_before = at(not_before_s)?;
        params.not_after = at(not_after_s)?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(cert_error)?;
        Ok(TerminalCert {
            serial,
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// The CRL listing `revoked`, signed by the CA at `now_s`, numbered `number` (increasing
    /// with each CRL), valid for [`TERMINAL_CERT_DAYS`] days (the node makes a new one at every
    /// revocation and every start, so it never relies on that date).
    pub fn crl(
        &self,
        revoked: &[Revoked],
        number: u64,
        now_s: i64,
    ) -> Result<Vec<u8>, TerminalCertError> {
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                let serial = hex::decode(&r.serial).map_err(|e| {
                    TerminalCertError::Certificate(format!("serial {}: {e}", r.serial))
                })?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: at(r.revoked_at)?,
                    reason_code: Some(RevocationReason::CessationOfOperation),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, TerminalCertError>>()?;
        let params = CertificateRevocationListParams {
            this_update: at(now_s - 60)?,
            next_update: at(now_s + TERMINAL_CERT_DAYS * 86_400)?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()?).map_err(cert_error)?;
        Ok(crl.der().to_vec())
    }
}

/// A random serial number: 16 bytes with the top bit clear (a positive integer, as RFC 5280
/// asks), and its hexadecimal form.
fn random_serial() -> Result<(String, SerialNumber), TerminalCertError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| TerminalCertError::Random(e.to_string()))?;
    b[0] &= 0x7f;
    // A leading zero byte would be dropped by the DER encoding: keep the serial 16 bytes.
    b[0] |= 0x01;
    Ok((hex::encode(b), SerialNumber::from_slice(&b)))
}

/// A new one-time password for a PKCS#12 file ([`P12_PASSWORD_CHARS`] characters).
pub fn one_time_password() -> Result<String, TerminalCertError> {
    let mut bytes = [0u8; P12_PASSWORD_CHARS * 2];
    getrandom::fill(&mut bytes).map_err(|e| TerminalCertError::Random(e.to_string()))?;
    Ok(bytes
        .chunks(2)
        .map(|c| {
            let i = u16::from_be_bytes([c[0], c[1]]) as usize % PASSWORD_ALPHABET.len();
            PASSWORD_ALPHABET[i] as char
        })
        .collect())
}

/// The PKCS#12 file of a terminal certificate: its key and certificate (not the CA's: a browser
/// needs only its own certificate, and a CA inside the file would be offered to the Windows
/// certificate store as a root), under `friendly_name` (what the browser's certificate picker
/// shows), encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and MACed with HMAC-SHA256
/// under `password`.
pub fn pkcs12(
    cert: &TerminalCert,
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, TerminalCertError> {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };
    let p12 = |e: p12_keystore::error::Error| TerminalCertError::Pkcs12(e.to_string());
    let certificate = Certificate::from_der(&cert.cert_der).map_err(p12)?;
    let key = PrivateKey::from_der(&cert.key_der).map_err(p12)?;
    let chain = PrivateKeyChain::new(cert.serial.as_str(), key, [certificate]);
    let mut store = KeyStore::new();
    store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .write()
        .map_err(p12)
}

/// The certificate and key (PKCS#8 DER) inside a PKCS#12 file written by [`pkcs12`], opened with
/// `password`.
pub fn open_pkcs12(data: &[u8], password: &str) -> Result<(Vec<u8>, Vec<u8>), TerminalCertError> {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    let store = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Strict)
        .map_err(|e| TerminalCertError::Unreadable(e.to_string()))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| TerminalCertError::Unreadable("no key in the file".into()))?;
    let cert = chain
        .certs()
        .first()
        .ok_or_else(|| TerminalCertError::Unreadable("no certificate in the file".into()))?;
    Ok((cert.as_der().to_vec(), chain.key().as_der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_certificate_round_trips_through_its_pkcs12_file() {
        let now = 1_800_000_000;
        let ca = TerminalCa::create("nsdb 端末証明書CA 試験病院", now).unwrap();
        let cert = ca
            .issue(
                "外来3番",
                "試験病院",
                now,
                now + TERMINAL_CERT_DAYS * 86_400,
            )
            .unwrap();
        assert_eq!(cert.serial.len(), 32);
        let password = one_time_password().unwrap();
        assert_eq!(password.chars().count(), P12_PASSWORD_CHARS);
        let file = pkcs12(&cert, "外来3番", &password).unwrap();
        let (cert_der, key_der) = open_pkcs12(&file, &password).unwrap();
        assert_eq!(cert_der, cert.cert_der);
        assert_eq!(key_der, cert.key_der);
        assert!(open_pkcs12(&file, "wrong").is_err());
        // The CA stored and loaded again signs a CRL naming the certificate.
        let again = TerminalCa::from_parts(
            ca.common_name.clone(),
            ca.cert_der.clone(),
            ca.key_der().to_vec(),
        );
        let crl = again
            .crl(
                &[Revoked {
                    serial: cert.serial.clone(),
                    revoked_at: now + 10,
                }],
                1,
                now + 20,
            )
            .unwrap();
        assert!(!crl.is_empty());
        assert!(!format!("{ca:?}{cert:?}").contains(&hex::encode(&cert.key_der)));
    }
}
