"""Who is calling: API keys off AWS, API Gateway's authorizer on AWS; protected routes need one or the other.

With API keys configured (``API_KEYS``, ``API_KEYS_FILE``), a protected route takes
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; a missing or wrong key is a
401 with ``WWW-Authenticate: Bearer``. The presented key is compared with every
configured key in constant time (``hmac.compare_digest``, all of them, no early exit),
is never logged, and names the caller only by a short hash (``key:1a2b3c4d...``) so
logs tell callers apart. Without keys the routes are open, unless API Gateway has
already authenticated the caller (``AuthMode`` in template.yaml): then its JWT
subject or IAM principal, hashed, names the caller. The caller's id travels with
an upload (its signed metadata) so that only the caller reads the result.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

ID_HASH_CHARS = 16  # 64 bits of sha256: enough to tell callers apart, useless to recover a key
logger = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(auto_error=False, description="An API key as a bearer token (API_KEYS), or a JWT on AWS.")
key_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (API_KEYS).")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: ``id`` is ``<kind>:<hash>`` (key, jwt or iam), safe to log and to store."""

    id: str


def short_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:ID_HASH_CHARS]


class ApiKeys:
    """The configured keys; ``identify`` says which caller a presented key is, in constant time."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def identify(self, presented: str | None) -> Caller | None:
        if not presented:
            return None
        offered, matched = presented.encode(), None
        for key in self._keys:  # every key, every time: how long it takes says nothing of which matched
            if hmac.compare_digest(offered, key):
                matched = key
        return Caller(f"key:{short_hash(matched.decode())}") if matched is not None else None


def gateway_caller(request: Request) -> Caller | None:
    """The caller API Gateway's authorizer let through (HTTP API v2 JWT or IAM; REST v1), if any."""
    event: dict[str, Any] = request.scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or authorizer.get("claims") or {}  # v2, else REST v1
    subject = claims.get("sub")
    if subject:
        return Caller(f"jwt:{short_hash(str(subject))}")
    principal = (authorizer.get("iam") or {}).get("userArn")
    return Caller(f"iam:{short_hash(str(principal))}") if principal else None


def require_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(key_header_scheme)],
) -> Caller:
    """The protected routes' gate when keys are configured: a valid key, else 401."""
    keys: ApiKeys = request.app.state.api_keys
    caller = keys.identify(api_key or (bearer.credentials if bearer else None))
    if caller is None:
        logger.warning("unauthenticated request refused", extra={"path": request.url.path})
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail="this route needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>")
    request.state.caller = caller
    return caller


def admit_gateway_caller(request: Request) -> Caller | None:
    """The gate without keys: the routes are open, and whoever API Gateway passed (if anyone) is the caller."""
    request.state.caller = gateway_caller(request)
    return request.state.caller


def caller_gate(keys: ApiKeys | None) -> Callable[..., Caller | None]:
    """The protected routes' dependency. Only ``require_key`` depends on the security schemes, so the OpenAPI
    document declares them (Swagger UI's padlocks) only where a key is asked for."""
    return require_key if keys is not None else admit_gateway_caller


def caller_id(request: Request) -> str | None:
    """The id of the caller ``caller_gate``'s dependency admitted (None: an open route, or nobody identified)."""
    caller: Caller | None = getattr(request.state, "caller", None)
    return caller.id if caller else None
