"""Throwaway certificate authorities and the server certificates they sign (cryptography).

``make_ca`` is the session's CA with one certificate for localhost/127.0.0.1, what every
test server presents. ``new_authority`` keeps the CA's key to sign more: certificates for
other names or out of their validity window, which clients must refuse.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TestCA:
    """Files of a test CA: the CA certificate, and a server key and certificate it signed."""

    __test__ = False

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A server's TLS context that presents this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class Authority:
    """A CA whose key is kept, to sign server certificates."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def issue(
        self,
        name: str,
        *,
        names: Sequence[str] = ("localhost", "127.0.0.1"),
        valid_from_days: int = -1,
        valid_until_days: int = 30,
    ) -> TestCA:
        """Sign a certificate for ``names`` (host names or IP addresses; the first is its
        subject) and write it as ``name``.pem.

        It is valid from ``valid_from_days`` to ``valid_until_days`` days from now (both
        negative: expired). Its key is written beside it, as ``name``.key.
        """
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=valid_from_days))
            .not_valid_after(now + timedelta(days=valid_until_days))
            .add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        files = TestCA(self.ca_file, self.directory / f"{name}.pem", self.directory / f"{name}.key")
        files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return files


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def new_authority(directory: Path, *, common_name: str = "mailopsd test CA") -> Authority:
    """Write a new CA's certificate as ``directory``/ca.pem; keep its key to sign with.

    Two authorities that a client must tell apart need different ``common_name``s: a
    client looks a certificate's issuer up by name.
    """
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    authority = Authority(directory, key, cert)
    authority.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return authority


def make_ca(directory: Path) -> TestCA:
    """Write a CA and a server certificate for localhost/127.0.0.1 into ``directory``."""
    return new_authority(directory).issue("server")
