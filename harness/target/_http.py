"""The harness's own HTTP calls to the service (catalog, cache stats), with its tokens and without URL secrets.

``open_url`` strips a URL's ``user:password@`` (urllib cannot use it) and sends it as Basic credentials, unless a
bearer token is given: the token wins, as it does for the users (``harness.users``).
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from http.client import HTTPResponse
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["auth_headers", "open_url"]


def auth_headers(token: str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}``, or {} without a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def open_url(
    url: str,
    *,
    token: str | None = None,
    data: bytes | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> HTTPResponse:
    """``urllib.request.urlopen`` of ``url`` with the token (or the URL's credentials) as Authorization.

    Raises urllib.error.HTTPError for a 4xx/5xx answer and OSError when the service cannot be reached.
    """
    parts = urlsplit(url)
    sent = {**(headers or {})}
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        url = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
        user, _, password = userinfo.partition(":")
        basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        sent.setdefault("Authorization", f"Basic {basic}")
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    return urllib.request.urlopen(request, timeout=timeout_s)  # type: ignore[no-any-return]
