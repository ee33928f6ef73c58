"""Why a TLS connection failed, in words an operator can act on.

aiohttp reports a server certificate that fails verification with OpenSSL's code, but a
refused *client* certificate only as "connection reset" (in TLS 1.3 the server's alert comes
after the client thinks the handshake is done). So on a TLS failure we make one short probe
connection with the same context and read the alert, and a second one that does not verify,
to name the certificate the server showed (subject, issuer, dates). The probe sends no
token: an HTTP request line without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from fanout.tlsconfig import (
    ERROR_TLS_CLIENT_CERT_REFUSED,
    ERROR_TLS_CLIENT_CERT_REQUIRED,
    ERROR_TLS_EXPIRED,
    ERROR_TLS_HOSTNAME,
    ERROR_TLS_OTHER,
    ERROR_TLS_UNKNOWN_CA,
    ClientTLS,
)

PROBE_TIMEOUT = 5.0
# OpenSSL X509_V_ERR_* codes
_UNKNOWN_CA = {2, 18, 19, 20, 21, 24, 27, 28, 30, 32}
_EXPIRED = {9, 10}  # not yet valid, expired
_HOSTNAME = {62, 64}  # host name mismatch, IP address mismatch


@dataclass(frozen=True)
class TLSFailure:
    error_num: int
    message: str


def describe_cert(der: bytes | None) -> str:
    """``subject CN=..., issuer CN=..., valid FROM to TO`` of a DER certificate."""
    if not der:
        return "no certificate"
    try:
        from cryptography import x509

        c = x509.load_der_x509_certificate(der)
        start, end = c.not_valid_before_utc, c.not_valid_after_utc
        names = ""
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = ", names " + " ".join(str(getattr(g, "value", g)) for g in san)
        except x509.ExtensionNotFound:
            pass
        return (f"subject {c.subject.rfc4514_string()}, issuer {c.issuer.rfc4514_string()}, "
                f"valid {start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ}{names}")
    except (ImportError, ValueError) as exc:
        return f"an unreadable certificate ({exc})"


def describe_cert_file(path: Path | None) -> str:
    if path is None:
        return "none configured"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
    except (OSError, ValueError, ImportError) as exc:
        return f"{path} (unreadable: {exc})"
    return f"{path} ({describe_cert(der)})"


def _peer_cert(host: str, port: int, tls: ClientTLS) -> bytes | None:
    """The server's certificate, fetched without verifying it (to name it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        with contextlib.suppress(OSError, ssl.SSLError):
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    try:
        with socket.create_connection((host, port), PROBE_TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as s:
            return s.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


class _PeerClosed(ssl.SSLError):
    """The server completed the handshake, then closed without a reply. asyncio servers
    drop a connection whose client certificate they refuse without flushing the alert,
    so this (after a CertificateRequest) is how a refused client certificate looks."""

    def __init__(self, asked_cert: bool):
        super().__init__("the server closed the connection right after the handshake")
        self.asked_cert = asked_cert


def _probe(host: str, port: int, ctx: ssl.SSLContext) -> BaseException | None:
    """Connect as the sink does and read one byte of a reply: the exception that
    raises (the server's alert for a refused client certificate), or None."""
    asked: list[bool] = []
    handshook = False

    def seen(_conn: object, direction: str, _v: object, _ct: object, msg: object,
             _data: object) -> None:
        if direction == "read" and getattr(msg, "value", msg) == 13:  # CertificateRequest
            asked.append(True)

    with contextlib.suppress(AttributeError, TypeError, ValueError):
        ctx._msg_callback = seen  # type: ignore[attr-defined]  # diagnosis only
    try:
        with socket.create_connection((host, port), PROBE_TIMEOUT) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as s:
            handshook = True
            s.sendall(b"GET /api/v0/replication/logger-state HTTP/1.1\r\nHost: "
                      + host.encode("idna") + b"\r\nConnection: close\r\n\r\n")
            if not s.recv(1):
                return _PeerClosed(bool(asked))
    except ConnectionResetError as exc:
        return _PeerClosed(bool(asked)) if handshook else exc
    except (OSError, ssl.SSLError) as exc:
        return exc
    finally:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            ctx._msg_callback = None  # type: ignore[attr-defined]
    return None


def classify(exc: BaseException, endpoint: str, tls: ClientTLS) -> TLSFailure | None:
    """The TLS failure ``exc`` (from a probe, or aiohttp's ``os_error``) means, or None if it
    is not a TLS failure (refused connection, timeout)."""
    u = urllib.parse.urlsplit(endpoint)
    host, port = u.hostname or "", u.port or 443
    where = f"TLS handshake with {endpoint} failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _verify_failure(exc, where, host, port, tls)
    mine = describe_cert_file(tls.cert_file)
    if isinstance(exc, _PeerClosed):
        return _closed_failure(exc, where, tls, mine)
    if isinstance(exc, ssl.SSLError):
        return _alert_failure(exc, where, tls, mine)
    return None


def _verify_failure(exc: ssl.SSLCertVerificationError, where: str, host: str, port: int,
                    tls: ClientTLS) -> TLSFailure:
    """We refused the server's certificate: which check failed, with the certificate."""
    ca = str(tls.ca_file) if tls.ca_file else "the system store"
    code = exc.verify_code
    peer = describe_cert(_peer_cert(host, port, tls))
    if code in _HOSTNAME:
        return TLSFailure(ERROR_TLS_HOSTNAME,
                          f"{where}: host name mismatch: the certificate does not name "
                          f"{host!r} ({peer}); {exc.verify_message}")
    if code in _EXPIRED:
        what = "is not valid yet" if code == 9 else "has expired"
        return TLSFailure(ERROR_TLS_EXPIRED,
                          f"{where}: the server's certificate {what} "
                          f"(now {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%MZ}; {peer})")
    if code in _UNKNOWN_CA:
        return TLSFailure(ERROR_TLS_UNKNOWN_CA,
                          f"{where}: unknown CA: the server's certificate is not signed by "
                          f"a CA in {ca} ({peer}); {exc.verify_message}")
    return TLSFailure(ERROR_TLS_OTHER, f"{where}: {exc.verify_message} ({peer})")


def _closed_failure(exc: _PeerClosed, where: str, tls: ClientTLS, mine: str) -> TLSFailure:
    """The server closed right after the handshake: it wanted our certificate, or not ours."""
    if not exc.asked_cert:
        return TLSFailure(ERROR_TLS_OTHER, f"{where}: the server closed the connection "
                          "right after the handshake")
    if tls.cert_file is None:
        return TLSFailure(ERROR_TLS_CLIENT_CERT_REQUIRED,
                          f"{where}: missing client certificate: the server requires one "
                          "(mutual TLS) and closed the connection; sink.tls.cert_file is "
                          "not set")
    return TLSFailure(ERROR_TLS_CLIENT_CERT_REFUSED,
                      f"{where}: the server refused our client certificate {mine}: it is "
                      "not signed by the server's client_ca_file, or expired")


def _alert_failure(exc: ssl.SSLError, where: str, tls: ClientTLS, mine: str) -> TLSFailure:
    """The server sent a TLS alert: what its reason says about our side."""
    reason = (exc.reason or "").upper()
    if "CERTIFICATE_REQUIRED" in reason or (
            "HANDSHAKE_FAILURE" in reason and tls.cert_file is None):
        return TLSFailure(ERROR_TLS_CLIENT_CERT_REQUIRED,
                          f"{where}: missing client certificate: the server requires one "
                          f"(mutual TLS) and sink.tls.cert_file is {mine}")
    if any(k in reason for k in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED",
                                 "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
                                 "DECRYPT_ERROR", "ACCESS_DENIED")):
        return TLSFailure(ERROR_TLS_CLIENT_CERT_REFUSED,
                          f"{where}: the server refused our client certificate "
                          f"({exc.reason}; ours: {mine}): it is not signed by the server's "
                          "client_ca_file, or expired")
    if "WRONG_VERSION_NUMBER" in reason or "HTTP_REQUEST" in reason:
        return TLSFailure(ERROR_TLS_OTHER,
                          f"{where}: the server does not speak TLS on this port (plain "
                          "HTTP?): use http:// or enable tls: on the target")
    return TLSFailure(ERROR_TLS_OTHER, f"{where}: {exc.reason or exc}")

async def diagnose(exc: BaseException, endpoint: str, tls: ClientTLS,
                   ctx: ssl.SSLContext) -> TLSFailure | None:
    """For a failed https request: the named TLS failure, or None if it was not one.

    ``exc`` is what aiohttp raised; a verification error is classified directly, anything
    else that might hide an alert (a reset, a disconnect) is probed once."""
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme != "https":
        return None
    inner = getattr(exc, "os_error", None) or getattr(exc, "certificate_error", None)
    cand = inner if isinstance(inner, ssl.SSLError) else exc
    if isinstance(cand, ssl.SSLError):
        probe_exc: BaseException | None = cand
    else:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionRefusedError) or \
                isinstance(inner, ConnectionRefusedError | TimeoutError):
            return None
        if "refused" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
            return None
        probe_exc = await asyncio.to_thread(_probe, u.hostname or "", u.port or 443, ctx)
    if probe_exc is None:
        return None
    if isinstance(probe_exc, ssl.SSLCertVerificationError):
        return await asyncio.to_thread(classify, probe_exc, endpoint, tls)
    return classify(probe_exc, endpoint, tls)
