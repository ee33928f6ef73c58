"""``fanout tls``: a private CA and node/client certificates, for operators without a PKI.

Made with the ``cryptography`` library (no openssl binary needed): ECDSA P-256 keys,
SHA-256 signatures. Keys are written mode 0600 (the loaders refuse anything else), the
certificates 0644. docs/operations.md gives the openssl equivalent and how to use an
existing CA instead.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fanout.errors import FanoutError

CA_CERT = "ca.crt"
CA_KEY = "ca.key"


class TLSToolError(FanoutError):
    """A CA directory or a name the operator gave cannot be used."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(out: Path, name: str = "fanout private CA", days: int = 3650,
            force: bool = False) -> Issued:
    """A self-signed CA in ``out`` (ca.crt, ca.key 0600)."""
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    if key_path.exists() and not force:
        raise TLSToolError(f"{key_path} exists: a new CA would orphan every certificate it "
                           "signed (use --force to replace it)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert_path, key_path)


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise TLSToolError(f"cannot read the CA in {ca_dir} ({CA_CERT}, {CA_KEY}): {exc}",
                           hint=f"make one: fanout tls ca --out {ca_dir}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TLSToolError(f"the CA key {ca_dir / CA_KEY} is not an ECDSA key: this tool "
                           "signs with the ECDSA CAs it makes",
                           hint=f"make one: fanout tls ca --out {ca_dir}")
    return cert, key


def make_cert(ca_dir: Path, name: str, out: Path | None = None, dns: list[str] | None = None,
              ips: list[str] | None = None, client: bool = False, days: int = 825,
              not_before: dt.datetime | None = None) -> Issued:
    """A certificate for ``name`` signed by the CA in ``ca_dir``: ``<out>/<name>.crt`` and
    ``<name>.key`` (0600). A node certificate (the default) serves and may also act as a
    client (bootstrap, its own forwarders); ``client`` makes a client-only one."""
    if not name or "/" in name or name.startswith("."):
        raise TLSToolError(f"--name must be a plain file name (got {name!r})")
    ca_cert, ca_key = _load_ca(ca_dir)
    out = out or ca_dir
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    for ip in ips or []:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise TLSToolError(f"--ip {ip!r} is not an IP address") from None
    if not client and not sans:
        raise TLSToolError("a node certificate needs the names clients use: --dns HOST "
                           "and/or --ip ADDRESS (the host name check compares against them)")
    start = not_before or (_now() - dt.timedelta(minutes=5))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else \
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                      False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca_key.public_key()), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert_path, key_path)
