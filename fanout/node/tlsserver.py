"""The node's TLS listener context, re-read on SIGHUP without a restart.

asyncio fixes a server's SSL context when it starts listening, so the listener gets one
context whose only job is to pick the current one per connection: its SNI callback, which
OpenSSL calls on every ClientHello (with or without a server name), swaps in the context
built from the files at the last successful reload. New connections get the new certificate
(and client CA); established ones keep theirs. A reload that fails (a missing file, a key
that does not match, a key readable by others) keeps the old context and says why: one log
line and ``tls.lastError`` in the node's state.
"""

from __future__ import annotations

import logging
import ssl
import sys
import time
from typing import Any

from fanout.errors import ConfigError
from fanout.state.node import TLSFigures
from fanout.statefile import iso_now
from fanout.tlsconfig import ServerTLS

log = logging.getLogger("fanout.node")


def _cert_facts(tls: ServerTLS) -> tuple[str, str, str]:
    """Subject, notBefore, notAfter of the first certificate of the chain file."""
    try:
        from cryptography import x509

        c = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
        return (c.subject.rfc4514_string(), f"{c.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
                f"{c.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    except (ImportError, OSError, ValueError):
        return "", "", ""


class ServerCerts:
    """The current server context; ``listener`` is the one to give ``create_server``."""

    def __init__(self, tls: ServerTLS):
        self.tls = tls
        self.current = tls.context()  # at start a bad file is a ConfigError: exit 78
        self.listener = tls.context()
        self.listener.sni_callback = self._pick
        subject, start, end = _cert_facts(tls)
        self.figures = TLSFigures(str(tls.cert_file), subject, start, end,
                                  tls.client_ca_file is not None)

    def _pick(self, conn: Any, _name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = self.current

    def reload(self) -> bool:
        """Re-read the files; on failure keep serving the old certificate."""
        self.figures.last_reload = iso_now()
        try:
            ctx = self.tls.context()
        except ConfigError as exc:
            self.figures.last_error = f"certificate reload failed, still serving " \
                                      f"{self.figures.subject or 'the old certificate'} " \
                                      f"(valid to {self.figures.not_after}): {exc}"
            log.error("TLS: %s", self.figures.last_error)
            return False
        self.current = ctx
        subject, start, end = _cert_facts(self.tls)
        f = self.figures
        f.subject, f.not_before, f.not_after = subject, start, end
        f.reloads += 1
        f.last_error = None
        log.warning("TLS: reloaded %s (%s, valid %s to %s)", self.tls.cert_file, subject,
                    start, end)
        return True


class _BadServerNames:
    """A ClientHello whose server name is not ASCII fails in the ssl module before our SNI
    callback runs, and Python prints it as an "Exception ignored" traceback: one per
    connection, a log flood anyone can cause. Those are counted and logged once a minute;
    every other unraisable exception still goes to the default hook."""

    def __init__(self) -> None:
        self.count = 0
        self._logged = 0.0
        self._default = sys.unraisablehook

    def __call__(self, info: Any) -> None:
        if isinstance(info.exc_value, UnicodeError) and isinstance(info.object, bytes):
            self.count += 1
            now = time.monotonic()
            if now - self._logged > 60:
                self._logged = now
                log.warning("TLS: refused handshakes whose server name is not ASCII "
                            "(%d so far)", self.count)
            return
        self._default(info)


def quiet_bad_server_names() -> None:
    if not isinstance(sys.unraisablehook, _BadServerNames):
        sys.unraisablehook = _BadServerNames()
