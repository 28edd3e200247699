"""HTTP-level protections: security headers, CSRF tokens, same-origin checks, cookies.

Every response gets a strict Content-Security-Policy (no scripts at all, styles and
images from this server only), no framing, no MIME sniffing and no caching of pages.
Every POST must carry the form's CSRF token: the session's own once logged in; before
login (login and first-start setup forms) an HMAC of a random per-browser cookie.  A POST
whose Origin or Sec-Fetch-Site header shows another site is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

SESSION_COOKIE = "portcullis_session"
FORM_COOKIE = "portcullis_form"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class SecurityHeaders:
    """WSGI middleware: add the security headers to every response, errors included."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        static = environ.get("PATH_INFO", "").startswith("/static/")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = [*headers, *((n, v) for n, v in HEADERS if n.lower() not in present)]
            if not static and "cache-control" not in present:
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def form_token(secret: str, browser_cookie: str) -> str:
    """The CSRF token of a form shown before login: bound to the browser's cookie."""
    return hmac.new(secret.encode(), b"form:" + browser_cookie.encode(),
                    hashlib.sha256).hexdigest()


DEVICE_COOKIE = "portcullis_device"
DEVICE_DAYS = 180


def device_token(secret: str, username: str, password_stamp: str) -> str:
    """The cookie a browser gets at a good login: it knew this user's password, so the
    user name's login limit does not hold it back (see ``accounts.throttle``).  Bound to
    when the password was set (``accounts.users.password_stamp``): a new password, or a
    new user of the same name, voids every browser's cookie."""
    text = f"device:{username.strip().lower()}\0{password_stamp}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_browser_cookie() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(),
                                                                  expected.encode())


def cross_site(environ: dict) -> bool:
    """True when the browser says the request comes from another site."""
    if environ.get("HTTP_SEC_FETCH_SITE", "") in ("cross-site",):
        return True
    origin = environ.get("HTTP_ORIGIN", "")
    if not origin or origin == "null":
        return origin == "null"
    host = environ.get("HTTP_HOST", "")
    return urlsplit(origin).netloc.lower() != host.lower()


def safe_next(target: str) -> str:
    """A local path to go to after login, as it may stand in a Location header (other
    sites give '/')."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    # DEL and text beyond ASCII have no place in a header (bottle sent them as raw bytes,
    # which a proxy may refuse); escaped, they name the same page.
    return quote(target, safe="/?&=%#:@!$'()*+,;~[]")
