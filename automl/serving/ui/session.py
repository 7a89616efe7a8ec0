"""Dashboard sessions: a signed cookie after sign-in with an API key, and CSRF tokens.

The cookie holds ``{"user", "key", "exp", "nonce"}`` (the key's *id*, never the key) and an
HMAC-SHA256 of it under ``ui.session_secret``; it is HttpOnly, ``SameSite=Strict`` and
scoped to ``/ui``. Each request checks the signature and the expiry, then asks the
identity store for the key id's current roles, so revoking the key (or a role) ends what
the session may do within ``auth.cache_ttl`` seconds. Every form carries a CSRF token
bound to the session's nonce; the sign-in form one bound to a short-lived cookie of its
own (so a third-party page cannot sign a visitor in either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

COOKIE = "automl_session"
SIGN_IN_COOKIE = "automl_sign_in"
PATH = "/ui"


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, with which key (its id), until when."""

    user: str
    key_id: str
    expires: float
    nonce: str


class Sessions:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: str | None, hours: float, secure: bool) -> None:
        raw = secret.encode() if secret else secrets.token_bytes(32)
        self.secret = hashlib.sha256(b"automl-ui\0" + raw).digest()
        self.seconds = float(hours) * 3600
        self.secure = bool(secure)

    def mac(self, purpose: str, text: str) -> str:
        return encode(hmac.new(self.secret, f"{purpose}\0{text}".encode(), "sha256").digest())

    def issue(self, user: str, key_id: str) -> tuple[str, Session]:
        """A new session's cookie value and the session."""
        session = Session(user, key_id, time.time() + self.seconds, secrets.token_urlsafe(16))
        body = encode(
            json.dumps(
                {"user": user, "key": key_id, "exp": session.expires, "nonce": session.nonce}
            ).encode()
        )
        return f"{body}.{self.mac('session', body)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None (absent, forged, malformed or expired)."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self.mac("session", body)):
            return None
        try:
            data: Any = json.loads(decode(body))
            session = Session(
                str(data["user"]), str(data["key"]), float(data["exp"]), data["nonce"]
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf(self, session: Session) -> str:
        """The CSRF token every form of ``session`` carries."""
        return self.mac("csrf", session.nonce)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))

    def sign_in_token(self, nonce: str) -> str:
        """The sign-in form's token, bound to the ``automl_sign_in`` cookie's nonce."""
        return self.mac("sign-in", nonce)

    def cookie_options(self, max_age: float | None) -> dict[str, Any]:
        """``set_cookie`` options: HttpOnly, SameSite=Strict, path /ui, Secure if set."""
        return {
            "httponly": True,
            "samesite": "strict",
            "secure": self.secure,
            "path": PATH,
            "max_age": None if max_age is None else int(max_age),
        }
