"""Certificates generated for the TLS tests (with `cryptography`), written as PEM files:

    ca.pem                 the CA that signs the server and trusted client certificates
    server.pem/.key        CN=localhost, SAN localhost and 127.0.0.1, signed by the CA
    <name>.pem/.key        client certificates: `alice` (CN=alice,O=ferrymq tests), `nobody`
                           (a CN that is no user), `expired` (CN=alice, expired yesterday),
                           `untrusted` (CN=alice, signed by a CA the broker does not know)
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _name(cn, org="ferrymq tests"):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _write(dir: Path, stem: str, cert, key=None):
    (dir / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (dir / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
        ))


def _ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(ca, cn, server=False, valid=(-DAY, 30 * DAY)):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0]).not_valid_after(now + valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@dataclass
class Pki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    def client(self, name: str) -> tuple[str, str]:
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def server_settings(self, client_auth="optional", reload_ms=0, handshake_ms=2000) -> dict:
        """FERRYMQ_TLS_* variables for a broker serving server.pem."""
        return {
            "FERRYMQ_TLS_CERTFILE": self.path("server.pem"),
            "FERRYMQ_TLS_KEYFILE": self.path("server.key"),
            "FERRYMQ_TLS_CACERTFILE": self.ca,
            "FERRYMQ_TLS_CLIENT_AUTH": client_auth,
            "FERRYMQ_TLS_RELOAD_CHECK_INTERVAL_MS": str(reload_ms),
            "FERRYMQ_TLS_HANDSHAKE_TIMEOUT_MS": str(handshake_ms),
        }

    def reissue_server(self, cn="localhost"):
        """A new server certificate from the same CA, written over server.pem/.key."""
        ca_cert = x509.load_pem_x509_certificate((self.dir / "ca.pem").read_bytes())
        ca_key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        cert, key = _leaf((ca_cert, ca_key), cn, server=True)
        # The key first: a reload that reads a new key with the old certificate fails and
        # keeps the old pair; the next change (the certificate) then loads both.
        tmp = self.dir / "next"
        tmp.mkdir(exist_ok=True)
        _write(tmp, "server", cert, key)
        (tmp / "server.key").replace(self.dir / "server.key")
        (tmp / "server.pem").replace(self.dir / "server.pem")
        return cert


def make_pki(dir: Path) -> Pki:
    dir.mkdir(parents=True, exist_ok=True)
    ca = _ca("ferrymq test CA")
    _write(dir, "ca", ca[0], ca[1])
    _write(dir, "server", *_leaf(ca, "localhost", server=True))
    _write(dir, "alice", *_leaf(ca, "alice"))
    _write(dir, "nobody", *_leaf(ca, "nobody"))
    _write(dir, "expired", *_leaf(ca, "alice", valid=(-10 * DAY, -DAY)))
    _write(dir, "untrusted", *_leaf(_ca("someone else's CA"), "alice"))
    return Pki(dir)
