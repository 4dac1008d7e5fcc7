"""Page keys: the one string under which agents on "the same page" meet.

Two URLs that differ only in ways that do not matter to an agent (a fragment,
the order of query parameters, tracking parameters, the case of the host, a
default port) give the same key.  Anything that is not an http(s) URL, such as
``booking:309208537``, is its own key.

Keys are at most :data:`MAX_KEY_LENGTH` characters.  A URL whose key would be
longer keeps a readable head and ends with ``#`` and a digest of the whole key
(a fragment never survives in a key, so the mark is unambiguous): a long URL
is shortened the same way every time, and two long URLs stay apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_KEY_LENGTH = 512
_DIGEST_LENGTH = 32


def page_key(raw: str, tracking_params: Iterable[str] = ()) -> str:
    """Return the page key of ``raw``, a URL or an opaque key.

    The key of a URL is its scheme, host, port (unless the default one), path
    and query parameters sorted, without the fragment, without user info, and
    without ``utm_*`` parameters or any name in ``tracking_params``.
    """
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return text

    scheme = parts.scheme.lower()
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return text
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"

    ignored = set(tracking_params)
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not name.startswith("utm_") and name not in ignored
    )
    path = parts.path or "/"
    key = f"{scheme}://{host}{path}"
    if query:
        key += "?" + "&".join(
            f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in query
        )
    if len(key) > MAX_KEY_LENGTH:
        key = _shorten(key)
    return key


def _shorten(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST_LENGTH]
    return key[: MAX_KEY_LENGTH - _DIGEST_LENGTH - 1] + "#" + digest
