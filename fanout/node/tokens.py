"""Tokens: id -> secret and permissions, from a private YAML file.

Only the token *id* ever leaves this module (into datalog headers, state and logs); the
secret is compared in constant time and never stored anywhere else.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from fanout.confload import Section, read_yaml
from fanout.errors import ConfigError, FanoutError
from fanout.secretfile import check_private

# ``admin`` is for the calls that destroy data wholesale (``restore?replace=true``): an
# upstream peer holding ``replicate`` can feed this node records, not wipe it.
PERMISSIONS = ("write", "read", "replicate", "admin")


class AuthError(FanoutError):
    """Missing or unknown token, or a token without the needed permission (HTTP 403)."""


@dataclass(frozen=True)
class Token:
    id: str
    secret: str
    permissions: frozenset[str]

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"Token(id={self.id!r}, permissions={sorted(self.permissions)})"


class TokenTable:
    def __init__(self, tokens: list[Token]):
        self._tokens = tokens

    def check(self, secret: str | None, permission: str) -> str:
        """The token id for ``secret`` if it has ``permission``; AuthError otherwise."""
        if not secret:
            raise AuthError("missing token (header X-Warp10-Token)")
        try:
            # aiohttp hands undecodable header bytes over as surrogate escapes (0xff ->
            # U+DCFF); a percent-decoded path may hold lone surrogates: no secret has either
            given = secret.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise AuthError("unknown token") from None
        found: Token | None = None
        for tok in self._tokens:  # compare against all, in constant time each
            if hmac.compare_digest(tok.secret.encode(), given):
                found = tok
        if found is None:
            raise AuthError("unknown token")
        if permission not in found.permissions:
            raise AuthError(f"token '{found.id}' lacks the '{permission}' permission")
        return found.id

    def secret_with(self, permission: str) -> str | None:
        """A secret holding ``permission``, for this node's own tools to call itself."""
        for tok in self._tokens:
            if permission in tok.permissions:
                return tok.secret
        return None


def load_tokens(path: Path) -> TokenTable:
    check_private(path, "tokens file")
    top = Section(path, read_yaml(path))
    tokens: list[Token] = []
    secrets: set[str] = set()
    for tid in list(top.data):
        sec = top.section(str(tid))
        secret = sec.string("secret", required=True)
        if len(secret) < 16:
            raise sec.error("secret", "must be at least 16 characters")
        if secret in secrets:
            raise sec.error("secret", "is the same as another token's secret")
        secrets.add(secret)
        perms = sec.string_list("permissions", check=lambda p: p in PERMISSIONS)
        if not perms:
            raise sec.error("permissions", f"must list at least one of {', '.join(PERMISSIONS)}")
        sec.finish()
        tokens.append(Token(str(tid), secret, frozenset(perms)))
    if not tokens:
        raise ConfigError(path, None, "defines no token")
    return TokenTable(tokens)
