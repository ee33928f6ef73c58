"""Transport security: the ``tls`` sections of fanout.yaml and of a target's sink, the SSL
contexts built from them, and the one place that turns a failed handshake into an error an
operator can act on (which certificate, which endpoint, which dates, why).

Server side (``fanout.yaml``)::

    tls: {cert_file: tls/node.crt, key_file: tls/node.key, client_ca_file: tls/ca.crt}

``client_ca_file`` makes it mutual TLS: a client must present a certificate that CA signed.
Client side (a target's ``sink.tls``, ``bootstrap_from.tls``)::

    tls: {ca_file: ../tls/ca.crt, cert_file: ../tls/client.crt, key_file: ../tls/client.key}

``ca_file`` unset: the system store. The host name is always checked. Key files hold
secrets: like token files, they must not be readable by group or others.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from fanout.confload import Section
from fanout.errors import ConfigError
from fanout.secretfile import check_private

# lastError numbers of TLS failures (docs/operations.md lists them); all are retried.
ERROR_TLS_UNKNOWN_CA = 1460  # the target's certificate is not signed by a trusted CA
ERROR_TLS_HOSTNAME = 1461  # the target's certificate does not name the endpoint's host
ERROR_TLS_EXPIRED = 1462  # the target's certificate expired (or is not valid yet)
ERROR_TLS_CLIENT_CERT_REQUIRED = 1463  # the target wants a client certificate, none sent
ERROR_TLS_CLIENT_CERT_REFUSED = 1464  # the target refused ours (another CA, expired...)
ERROR_TLS_OTHER = 1465  # any other handshake failure (plain HTTP on a TLS port, versions)
TLS_ERRORS = frozenset(range(ERROR_TLS_UNKNOWN_CA, ERROR_TLS_OTHER + 1))

# A TLS handshake not done by then is dropped: garbage or a truncated ClientHello never
# holds a file descriptor longer than this.
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerTLS:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A fresh server context from the files as they are now (ConfigError if bad)."""
        check_private(self.key_file, "TLS key file")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(ctx, self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            _load_ca(ctx, self.client_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@dataclass(frozen=True)
class ClientTLS:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # ``ca_file`` is the server's own certificate, trusted as is (a node talking to itself
    # through its local address, which its certificate need not name)
    pinned: bool = False

    def context(self) -> ssl.SSLContext:
        """Verify the server against ``ca_file`` (else the system store), check the host
        name, present ``cert_file``/``key_file`` when given."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.pinned:
            ctx.check_hostname = False
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if self.ca_file is not None:
            _load_ca(ctx, self.ca_file)
        if self.cert_file is not None and self.key_file is not None:
            check_private(self.key_file, "TLS key file")
            _load_chain(ctx, self.cert_file, self.key_file)
        return ctx


NO_CLIENT_TLS = ClientTLS()


def self_client(tls: ServerTLS) -> ClientTLS:
    """How a node's own tools (bootstrap, auto_resync) reach it over its own TLS: its
    certificate pinned, and presented as the client certificate for mutual TLS (certificates
    from ``fanout tls cert`` allow both uses)."""
    return ClientTLS(tls.cert_file, tls.cert_file, tls.key_file, pinned=True)


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise ConfigError(Path(exc.filename or cert), None, "file not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(cert, None, f"cannot load the certificate {cert} with the key "
                          f"{key}: {exc}", hint="check that both are PEM and belong "
                          "together: openssl x509 -noout -modulus -in CERT | openssl md5 "
                          "vs openssl rsa/ec -noout -modulus -in KEY") from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except FileNotFoundError:
        raise ConfigError(ca, None, "CA file not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(ca, None, f"cannot load the CA certificates: {exc}") from None


def server_tls(sec: Section) -> ServerTLS | None:
    """The optional ``tls`` section of fanout.yaml."""
    if sec.data.get("tls") is None:
        sec.used.add("tls")
        return None
    t = sec.section("tls")
    result = ServerTLS(t.path("cert_file", required=True),  # type: ignore[arg-type]
                       t.path("key_file", required=True),  # type: ignore[arg-type]
                       t.path("client_ca_file"))
    t.finish()
    check_private(result.key_file, "TLS key file")
    return result


def client_tls(sec: Section) -> ClientTLS:
    """The optional ``tls`` section of a sink or of ``bootstrap_from``."""
    if sec.data.get("tls") is None:
        sec.used.add("tls")
        return NO_CLIENT_TLS
    t = sec.section("tls")
    result = ClientTLS(t.path("ca_file"), t.path("cert_file"), t.path("key_file"))
    if (result.cert_file is None) != (result.key_file is None):
        raise t.error("cert_file", "give both cert_file and key_file, or neither")
    t.finish()
    try:
        result.context()  # every file exists, loads, and the key is private: else exit 78
    except ConfigError as exc:
        raise ConfigError(sec.file, t.prefix.rstrip("."), str(exc), exc.hint) from None
    return result


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_reason(endpoint: str) -> str | None:
    """Why sending a token to ``endpoint`` exposes it, or None: plain ``http://`` to a host
    that is not loopback puts the token and every record on the network in clear."""
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme == "http" and not is_loopback(u.hostname or ""):
        return (f"{endpoint} is plain http:// to a host that is not loopback: its token and "
                "every record cross the network in clear (use https:// and sink.tls)")
    return None


def check_require_tls(require: bool, source: Path, endpoint: str, key: str) -> None:
    """``require_tls: true`` in fanout.yaml: refuse (ConfigError, exit 78) an insecure
    endpoint."""
    why = insecure_reason(endpoint)
    if require and why:
        raise ConfigError(source, key, f"{why}; require_tls is true in fanout.yaml",
                          hint="serve the target over TLS (tls: in its fanout.yaml) and use "
                               "an https:// endpoint")
