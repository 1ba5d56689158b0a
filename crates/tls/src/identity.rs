//! Who a client certificate names: the subject as Kafka's SSL principal spells it (RFC 2253,
//! most specific attribute first) and its common name (AMQP EXTERNAL's user name).

use ferrymq_core::connections::PeerCertificate;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// The certificate's identity, or None if it cannot be parsed (rustls verified it already,
/// so that would be an extension rustls accepts and x509-parser does not).
pub fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let validity = cert.validity();
    Some(PeerCertificate {
        subject: rfc2253(cert.subject()),
        issuer: rfc2253(cert.issuer()),
        common_name,
        validity: format!(
            "{} - {}",
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime()
        ),
    })
}

/// RFC 2253: relative names in reverse order of the encoding, `,`-separated, with `+`
/// joining the attributes of one name and `,+"\<>;` escaped.
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let key = x509_parser::objects::oid2abbrev(
                        attr.attr_type(),
                        x509_parser::objects::oid_registry(),
                    )
                    .map_or_else(|_| attr.attr_type().to_id_string(), str::to_owned);
                    let value = attr.as_str().map_or_else(|_| String::new(), escape);
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    #[test]
    fn subject_is_rfc2253_most_specific_first_and_cn_is_extracted() {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::OrganizationName, "Example, Inc");
        dn.push(DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let peer = peer_certificate(cert.der()).unwrap();
        assert_eq!(peer.subject, "CN=alice,O=Example\\, Inc,C=DE");
        assert_eq!(peer.issuer, peer.subject);
        assert_eq!(peer.common_name.as_deref(), Some("alice"));
        assert!(peer.validity.contains(" - "), "{}", peer.validity);
    }

    #[test]
    fn garbage_is_no_identity() {
        assert!(peer_certificate(b"not a certificate").is_none());
    }
}
