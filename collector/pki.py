"""The school's own CA, the collector's TLS certificate, and the policy signing key."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collector.paths import DataDir, make_private_dir, write_public, write_secret
from protos import evidence

CA_YEARS = 10
SERVER_YEARS = 2


def default_names() -> list[str]:
    """Names the server certificate covers unless told otherwise: this host and loopback."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    fqdn = socket.getfqdn()
    if fqdn and fqdn != "localhost":
        names.add(fqdn)
    return sorted(names)


def _pem_key(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def create(data: DataDir, school: str, names: list[str]) -> None:
    """Write CA, server certificate and policy key into a fresh data folder."""
    now = dt.datetime.now(dt.UTC)
    make_private_dir(data.root / "secrets")
    make_private_dir(data.root / "tls")

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, school),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{school} safeguarding CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{school} collector")])
    server_key, server_cert = _server_certificate(ca_key, ca_name, subject, _san(names), now)

    policy_key = Ed25519PrivateKey.generate()
    write_secret(data.ca_key, _pem_key(ca_key))
    write_secret(data.server_key, _pem_key(server_key))
    write_secret(data.policy_key, _pem_key(policy_key))
    write_public(data.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_public(data.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    write_public(
        data.policy_pub,
        policy_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
    )
    ensure_evidence_key(data)


ServerPair = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _server_certificate(ca_key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                        subject: x509.Name, names: x509.SubjectAlternativeName,
                        now: dt.datetime) -> ServerPair:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * SERVER_YEARS))
        .add_extension(names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def rotate(data: DataDir) -> x509.Certificate:
    """A new server key and certificate from the school's CA, for the same names: PCs trust
    the CA, not the certificate, so none needs enrolling again. The old pair is kept beside
    (``*.old``) until the next rotation. Run as root (the data folder is the service
    account's), the new files are given to the old ones' owner, or the service could not
    read its own key; both are written in full before either replaces the old."""
    ca_key = serialization.load_pem_private_key(data.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{data.ca_key} is not the CA's EC key")
    ca = x509.load_pem_x509_certificate(data.ca_cert.read_bytes())
    old = x509.load_pem_x509_certificate(data.server_cert.read_bytes())
    names = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    key, cert = _server_certificate(ca_key, ca.subject, old.subject, names,
                                    dt.datetime.now(dt.UTC))  # fmt: skip
    owner = data.server_key.stat()

    def beside(path: Path, suffix: str) -> Path:
        return path.with_name(path.name + suffix)

    staged = [(data.server_key, write_secret, _pem_key(key)),
              (data.server_cert, write_public, cert.public_bytes(serialization.Encoding.PEM))]
    for path, write, new in staged:
        write(beside(path, ".old"), path.read_bytes())
        write(beside(path, ".new"), new)
        for made in (beside(path, ".old"), beside(path, ".new")):
            if os.geteuid() == 0:
                os.chown(made, owner.st_uid, owner.st_gid)
    for path, _, _ in staged:
        beside(path, ".new").replace(path)
    return cert


def load_policy_key(data: DataDir) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data.policy_key.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{data.policy_key} is not an Ed25519 key")
    return key


def ensure_evidence_key(data: DataDir) -> bytes:
    """The raw public half of the screenshot evidence key, made if the data folder has none
    (one made before screenshots existed gets it at its next start). Never replaced: every
    screenshot held, and every one still on a PC, is sealed to it."""
    if not data.evidence_key.exists():
        make_private_dir(data.evidence_key.parent)
        write_secret(data.evidence_key, _pem_key(X25519PrivateKey.generate()))
    raw = evidence.public_key_of(load_evidence_key(data))
    if not data.evidence_pub.exists() or data.evidence_pub.read_bytes() != raw:
        write_public(data.evidence_pub, raw)  # derived: rewritten if lost or edited
    return raw


def load_evidence_key(data: DataDir) -> X25519PrivateKey:
    key = serialization.load_pem_private_key(data.evidence_key.read_bytes(), password=None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{data.evidence_key} is not an X25519 key")
    return key


EXPIRY_WARNING_DAYS = 30


def certificate_warning(data: DataDir, now: dt.datetime | None = None) -> str | None:
    """What to tell the operator about the server certificate's dates, or None if all is well:
    an expired certificate fails every PC's handshake, so it is said at start, weeks ahead."""
    cert = x509.load_pem_x509_certificate(data.server_cert.read_bytes())
    now = now or dt.datetime.now(dt.UTC)
    end, start = cert.not_valid_after_utc, cert.not_valid_before_utc
    if now < start:
        return (f"the server certificate is not valid until {start:%Y-%m-%d %H:%M} UTC: PCs "
                "will refuse it until then (is this machine's clock behind?)")
    if now >= end:
        return (f"the server certificate expired on {end:%Y-%m-%d}: every PC's handshake fails "
                "until it is renewed")
    days = (end - now).days
    if days < EXPIRY_WARNING_DAYS:
        return f"the server certificate expires in {days} days ({end:%Y-%m-%d}): renew it"
    return None
