"""API keys (every route but the probes) and the admin token (/admin/*).

No keys configured means open access (local demos); configured keys are compared in
constant time, every key every time, so timing tells nothing about which one was close.
serving/pipeline.py applies them to every request.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from serving.errors import UnauthorizedError


def token_from(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """The token from ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``."""
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key.decode("latin-1").strip() or None if api_key else None


def client_for(token: str | None, keys: dict[str, SecretStr]) -> str:
    """The client id owning ``token``; UnauthorizedError when it matches none."""
    if token is None:
        raise UnauthorizedError("API key required: send 'Authorization: Bearer <key>'")
    presented = token.encode()
    found: str | None = None
    for client, key in keys.items():
        if hmac.compare_digest(presented, key.get_secret_value().encode()):
            found = client
    if found is None:
        raise UnauthorizedError("invalid API key")
    return found


def check_admin(token: str | None, admin_token: SecretStr | None) -> None:
    """Admin actions are open when no ADMIN_TOKEN is set, else need exactly that token."""
    if admin_token is None:
        return
    expected = admin_token.get_secret_value().encode()
    if token is None or not hmac.compare_digest(token.encode(), expected):
        raise UnauthorizedError("admin token required: send 'Authorization: Bearer <token>'")
