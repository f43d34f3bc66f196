//! rustls material: certificate loading, SNI choice among several certificates, and the client config
//! used towards `https://` origins (webpki roots plus an optional CA file). PEM files are read through
//! [`files`]: regular files only, 1 MiB at most, never blocking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::files;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which file of a certificate pair a problem is about, so that it is reported at the key naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairFile {
    Cert,
    Key,
}

/// Why a certificate pair did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairError {
    pub file: PairFile,
    pub message: String,
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Loads a PEM certificate chain and its PEM private key and checks that they belong together. Each
/// file is read as [`files::read`] does: a regular file of at most [`files::PEM_CAP`] bytes.
pub(crate) fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, PairError> {
    let cert_err = |message: String| PairError { file: PairFile::Cert, message };
    let key_err = |message: String| PairError { file: PairFile::Key, message };
    let pem = files::read(cert, files::PEM_CAP).map_err(|e| cert_err(format!("cannot read certificate: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("cannot read certificate {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(cert_err(format!("{} holds no PEM certificate", cert.display())));
    }
    let pem = files::read(key, files::PEM_CAP).map_err(|e| key_err(format!("cannot read private key: {e}")))?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_err(format!("cannot read private key {}: {e}", key.display())))?;
    let ck = CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| {
        key_err(format!("certificate {} and key {} do not fit together: {e}", cert.display(), key.display()))
    })?;
    Ok(Arc::new(ck))
}

/// Chooses a certificate by SNI: exact DNS name from the certificate's SANs, then `*.suffix` SANs,
/// then the first certificate listed (also used when the client sends no SNI).
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        // rustls hands SNI over lower-cased and validated as a DNS name.
        if let Some(ck) = self.exact.get(name) {
            return Some(ck.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(ck) = self.wildcard.get(parent)
        {
            return Some(ck.clone());
        }
        Some(self.default.clone())
    }
}

/// A server config for one HTTPS listener: the certificates it serves, ALPN h2 then http/1.1.
pub fn server_config(pairs: &[(PathBuf, PathBuf)]) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut keys = Vec::with_capacity(pairs.len());
    for (cert, key) in pairs {
        keys.push((load_certified_key(cert, key).map_err(|e| e.message)?, cert.clone()));
    }
    server_config_from(&keys)
}

/// [`server_config`] from pairs already loaded (each with its certificate file, for errors), so that
/// what was checked is what is served, each file read once.
pub(crate) fn server_config_from(keys: &[(Arc<CertifiedKey>, PathBuf)]) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for (ck, cert) in keys {
        let leaf = ck.end_entity_cert().map_err(|e| format!("{}: {e}", cert.display()))?;
        let parsed = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("{}: {e:?}", cert.display()))?;
        for name in parsed.valid_dns_names() {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.entry(parent.to_string()).or_insert_with(|| ck.clone()),
                None => exact.entry(name).or_insert_with(|| ck.clone()),
            };
        }
        default.get_or_insert(ck.clone());
    }
    let default = default.ok_or("an HTTPS listener needs at least one certificate")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { exact, wildcard, default }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM CA certificates of a file, for origins signed by a private CA.
/// Read as [`files::read`] does: a regular file of at most [`files::PEM_CAP`] bytes.
pub(crate) fn load_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = files::read(path, files::PEM_CAP).map_err(|e| format!("cannot read CA file: {e}"))?;
    let roots: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}

/// The client config towards `https://` origins: Mozilla's roots (webpki-roots) plus `ca_file`. ALPN is
/// left to hyper-rustls, which offers what the client speaks.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in load_roots(path)? {
            roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
