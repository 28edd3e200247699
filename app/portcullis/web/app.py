"""The bottle application: request context, access control, rendering, error pages.

``create_app(services)`` returns the WSGI application the server runs.  Each page
module in ``pages/`` registers its routes through ``WebApp.page``, which states who may
use the page (anyone, any logged-in administrator, or the super administrator only);
per-domain checks happen in the page through ``RequestContext.require_domain``.
"""

from __future__ import annotations

import enum
import functools
import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import bottle

from portcullis import __version__
from portcullis.accounts import audit, sessions
from portcullis.accounts.users import User, get_user
from portcullis.addresses import AddressError, domain_of
from portcullis.directory.domains import Domain, get_domain
from portcullis.services import Services
from portcullis.web import display, forms, i18n, security
from portcullis.web.providers import Providers, table

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
VIEWS = str(HERE / "views")
STATIC = str(HERE / "static")
CONTEXT_KEY = "portcullis.context"
LOGOUT_PATH = "/logout"

# A logged-in administrator's form may be large: a pasted valid-address list of a big
# site (bottle's own 100 KiB refused a list of 4,000 addresses).  Before login (login and
# setup forms) a body stays small: whoever reaches the page cannot make the process
# parse megabytes.  Each field costs far more parsed than sent ("&&&..."), so fields are
# counted as they are read.
MAX_FORM_BYTES = 16 * 1024 * 1024
MAX_ANONYMOUS_FORM_BYTES = 100 * 1024
MAX_FORM_FIELDS = 10_000
# A request with a larger form (a pasted list) waits until no other one is being handled:
# read and checked, a form costs several times its size (a 16 MiB paste of bad lines
# 65 MB), and eight at once, from one administrator, took 410 MB of a process that
# systemd stops at 512.
LARGE_FORM_BYTES = 1024 * 1024
LARGE_FORM_WAIT_SECONDS = 60
LARGE_FORMS = threading.Semaphore(1)


class Access(enum.Enum):
    ANYONE = "anyone"          # login and setup pages
    ADMIN = "admin"            # any logged-in administrator (domain pages check the domain)
    SUPER = "super"            # the super administrator only


def when(stamp: float | None, with_seconds: bool = True, zone: bool = False) -> str:
    """A time stamp as the appliance's local time; with ``zone``, its name then (CET,
    CEST, UTC): where an administrator compares it with other servers' logs."""
    if stamp is None:
        return ""
    layout = "%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M"
    return time.strftime(layout + (" %Z" if zone else ""), time.localtime(stamp))


class RequestContext:
    """Who is asking, in which language, and the helpers every page uses."""

    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.services = web.services
        self.store = web.services.store
        self.config = web.services.config
        environ = bottle.request.environ
        self.client_ip = environ.get("REMOTE_ADDR", "") or "unknown"
        self.catalogue = i18n.negotiate(environ.get("HTTP_ACCEPT_LANGUAGE", ""))
        self.token = bottle.request.get_cookie(security.SESSION_COOKIE) or ""
        self.session = sessions.load_session(self.store, self.token) if self.token else None
        self.user: User | None = None
        if self.session is not None:
            self.user = get_user(self.store, self.session.user)
            if self.user is None:
                sessions.end_session(self.store, self.token)
                self.session = None
        self._browser_cookie = bottle.request.get_cookie(security.FORM_COOKIE) or ""
        self._form: bottle.FormsDict | None = None
        self.holds_large_form = False

    # -- text -----------------------------------------------------------------------------

    def _(self, msgid: str, /, **params: object) -> str:
        return self.catalogue.gettext(msgid, **params)

    # -- input ----------------------------------------------------------------------------

    @property
    def form(self) -> bottle.FormsDict:
        """The posted form, decoded as UTF-8 (400 when it is not, 413 when it is larger
        than this request may send)."""
        if self._form is None:
            self._form = self._read_form()
        return self._form

    def _read_form(self) -> bottle.FormsDict:
        request = bottle.request
        length = max(0, request.content_length)
        multipart = request.content_type.startswith("multipart/")
        # Our pages send no multipart forms: bottle's parser takes them, small.
        limit = MAX_FORM_BYTES if self.session is not None and not multipart \
            else MAX_ANONYMOUS_FORM_BYTES
        too_large = bottle.HTTPError(413, self._(
            "The form is too large (at most {size} and {fields} fields); nothing was"
            " changed.", size=display.size(limit), fields=MAX_FORM_FIELDS))
        if length > limit:
            if self.token and self.session is None and not multipart:
                # A session that ended while the form was filled in (30 minutes idle is
                # soon, for a long list): the login is what is missing, not room.
                raise bottle.HTTPError(403, self._(
                    "Your session has ended, so nothing was changed. Please log in again"
                    " and send the form once more."))
            raise too_large
        if multipart:
            return self._utf8("forms")
        if length > LARGE_FORM_BYTES:
            if not LARGE_FORMS.acquire(timeout=LARGE_FORM_WAIT_SECONDS):
                raise bottle.HTTPError(503, self._(
                    "Another large form is being handled; nothing was changed. Please send"
                    " the form again in a minute."))
            self.holds_large_form = True       # released after the request (WebApp)
        found = bottle.FormsDict()
        found.recode_unicode = False     # the values are text already
        try:
            for name, value in forms.read_urlencoded(request.environ["wsgi.input"], length,
                                                     MAX_FORM_FIELDS):
                found.append(name, value)
        except forms.FormError as exc:
            if exc.too_large:
                raise too_large from None
            raise self._not_utf8() from None
        return found

    def forget_form(self) -> None:
        """Drop the form read (and let the next large one be read)."""
        self._form = None
        if self.holds_large_form:
            self.holds_large_form = False
            LARGE_FORMS.release()

    @functools.cached_property
    def query(self) -> bottle.FormsDict:
        return self._utf8("query")

    def _utf8(self, fields: str) -> bottle.FormsDict:
        """The request's ``forms`` or ``query``, as UTF-8.  Nothing is guessed or
        replaced: a value changed on the way in (a password, a list entry) would be worse
        than a clear refusal.  (Bottle reads a multipart body's headers as UTF-8 too.)"""
        try:
            return getattr(bottle.request, fields).decode()
        except (UnicodeDecodeError, LookupError):   # LookupError: a multipart charset=nope
            raise self._not_utf8() from None

    def _not_utf8(self) -> bottle.HTTPError:
        return bottle.HTTPError(400, self._(
            "The request holds text that is not UTF-8; nothing was changed."))

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default

    # -- CSRF -----------------------------------------------------------------------------

    @property
    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf
        if not self._browser_cookie:
            self._browser_cookie = security.new_browser_cookie()
            self.set_cookie(security.FORM_COOKIE, self._browser_cookie)
        return security.form_token(self.web.form_secret, self._browser_cookie)

    def csrf_ok(self) -> bool:
        given = self.field(security.CSRF_FIELD)
        if self.session is not None:
            return security.tokens_match(given, self.session.csrf)
        if not self._browser_cookie:
            return False
        return security.tokens_match(
            given, security.form_token(self.web.form_secret, self._browser_cookie))

    def set_cookie(self, name: str, value: str, max_age: int | None = None) -> None:
        secure = bottle.request.urlparts.scheme == "https"
        options: dict[str, Any] = {"path": "/", "httponly": True, "samesite": "strict",
                                   "secure": secure}
        if max_age is not None:
            options["max_age"] = max_age
        bottle.response.set_cookie(name, value, **options)

    # -- access ---------------------------------------------------------------------------

    def require_domain(self, name: str) -> Domain:
        """The domain, if this administrator may manage it; else 403 (or 404)."""
        assert self.user is not None
        if not self.user.may_manage(name.lower()):
            raise bottle.HTTPError(403, self._("You do not manage this domain."))
        try:
            domain = get_domain(self.store, name) if "." in name else None
        except AddressError:   # a..b, -a.example: no domain can have that name
            domain = None
        if domain is None:
            raise bottle.HTTPError(404, self._("No such domain."))
        return domain

    def shown_recipients(self, recipients: Iterable[str]) -> list[str]:
        """The recipients of a message this administrator may see: one message can go to
        several protected domains, and a domain administrator must not learn another
        domain's addresses (its Bcc recipients) from the archive, log or dashboard."""
        assert self.user is not None
        return [r for r in recipients if self.user.may_manage(domain_of(r))]

    def hide_recipients(self, text: str, recipients: Iterable[str]) -> str:
        """``text`` about a message (a symbol's reason, the delivery outcome) with the
        recipients ``shown_recipients`` leaves out written as such: a message is judged
        for one of its recipients, perhaps another domain's, and a release's outcome
        names every recipient it reached."""
        recipients = list(recipients)
        shown = {r.lower() for r in self.shown_recipients(recipients)}
        hidden = sorted({r.lower() for r in recipients} - shown, key=len, reverse=True)
        if not hidden or not text:
            return text
        # Whole addresses only: carl@example.co is not the start of carl@example.com.
        alternatives = "|".join(map(re.escape, hidden))
        pattern = re.compile(rf"(?<![\w.+-])(?:{alternatives})(?![\w-]|\.\w)", re.IGNORECASE)
        return pattern.sub(self._("(a recipient in another domain)"), text)

    def audit(self, action: str, detail: str = "") -> None:
        audit.record(self.store, self.user.name if self.user else "-", self.client_ip,
                     action, detail)

    # -- output ---------------------------------------------------------------------------

    def flash(self, text: str, level: str = "ok") -> None:
        if self.session is not None:
            sessions.push_message(self.store, self.session, level, text)

    def redirect(self, path: str) -> str:
        """See Other, to a local path (after a form post).  Built on the current response
        so cookies set while handling the request (a new session) are kept."""
        bottle.response.status = 303
        bottle.response.set_header("Location", path)
        return ""

    def verdict_badge(self, verdict: str) -> str:
        """A coloured verdict label, as markup (the label is escaped here)."""
        labels = {"accept": self._("accepted"), "tag": self._("tagged"),
                  "reject": self._("rejected"), "tempfail": self._("tempfailed")}
        css = verdict if verdict in labels else "other"
        return (f'<span class="verdict verdict-{css}">'
                f'{html.escape(labels.get(verdict, verdict))}</span>')

    def render(self, template: str, **values: Any) -> str:
        messages = sessions.pop_messages(self.store, self.session) if self.session else []
        context = {
            "_": self._, "user": self.user, "csrf": self.csrf_token, "flash_messages": messages,
            "nav": self.web.navigation(self), "path": bottle.request.path,
            "lang": self.catalogue.language, "version": __version__, "when": when,
            "zone": time.strftime("%Z"),
            "quote": quote, "show": display.show, "size": display.size,
            "duration": display.duration, "percent": display.percent, "table": table,
            "reveal_bidi": display.reveal_bidi,
            "badge": self.verdict_badge, "urlencode": urlencode, "title": "",
            "shown_recipients": self.shown_recipients, "hide_recipients": self.hide_recipients,
        }
        context.update(values)
        return bottle.template(template, template_lookup=[VIEWS], **context)


Handler = Callable[..., Any]

# (path, message id, access) of the main menu, in order.
NAVIGATION = [
    ("/", "Dashboard", Access.ADMIN),
    ("/domains", "Domains", Access.ADMIN),
    ("/relays", "Relays", Access.SUPER),
    ("/lists", "Black/White lists", Access.SUPER),
    ("/archive", "Archive", Access.ADMIN),
    ("/log", "Log", Access.ADMIN),
    ("/reports", "Reports", Access.ADMIN),
    ("/defenses", "Defenses", Access.ADMIN),
    ("/settings", "Settings", Access.SUPER),
    ("/users", "Users", Access.SUPER),
    ("/server", "Server admin", Access.SUPER),
]


class WebApp:
    def __init__(self, services: Services, providers: Providers | None = None) -> None:
        from portcullis.web.pages import PAGES

        self.services = services
        self.providers = providers or Providers(services)
        self.bottle = bottle.Bottle(catchall=True)
        self.bottle.hook("before_request")(self._before_request)
        self.bottle.hook("after_request")(self._after_request)
        for code in (400, 403, 404, 405, 413, 429, 500, 503):
            self.bottle.error(code)(self._error_page)
        self.bottle.route("/static/<name:path>", "GET", self._static)
        for module in PAGES:
            module.register(self)

    @functools.cached_property
    def form_secret(self) -> str:
        return str(self.services.store.scalar("SELECT value FROM web_secret WHERE id = 1"))

    def wsgi(self) -> security.WSGIApp:
        return security.SecurityHeaders(self.bottle)

    def navigation(self, ctx: RequestContext) -> list[tuple[str, str, bool]]:
        if ctx.user is None:
            return []
        current = bottle.request.path
        return [(path, ctx._(label), path == current or (path != "/" and
                                                         current.startswith(path + "/")))
                for path, label, access in NAVIGATION
                if access is Access.ADMIN or ctx.user.is_super]

    # -- routing --------------------------------------------------------------------------

    def page(self, path: str, method: str = "GET", access: Access = Access.ADMIN
             ) -> Callable[[Handler], Handler]:
        """Register a page handler ``handler(ctx, **url_args)`` with its access rule."""

        def decorate(handler: Handler) -> Handler:
            @functools.wraps(handler)
            def guarded(**url_args: Any) -> Any:
                ctx = bottle.request.environ[CONTEXT_KEY]
                if access is not Access.ANYONE and ctx.user is None:
                    if bottle.request.method == "GET":
                        # With its query: a bookmarked search, or one whose session
                        # ended, comes back as it was asked for.
                        target = bottle.request.fullpath
                        if bottle.request.query_string:
                            target += "?" + bottle.request.query_string
                        return ctx.redirect("/login?" + urlencode({"next": target}))
                    raise bottle.HTTPError(403, ctx._("Please log in again."))
                if access is Access.SUPER and not ctx.user.is_super:
                    raise bottle.HTTPError(403, ctx._(
                        "Only the super administrator may use this page."))
                return handler(ctx, **url_args)

            self.bottle.route(path, method, guarded)
            return handler

        return decorate

    def _before_request(self) -> None:
        if bottle.request.path.startswith("/static/"):
            return
        ctx = RequestContext(self)
        bottle.request.environ[CONTEXT_KEY] = ctx
        if bottle.request.method not in ("GET", "HEAD"):
            if security.cross_site(bottle.request.environ):
                raise bottle.HTTPError(403, ctx._("Cross-site form posts are refused."))
            if self._needs_token(ctx) and not ctx.csrf_ok():   # reads the form: 413 first
                # %r: a path may hold a decoded newline, which would forge a log line;
                # cut: anyone may send one as long as the request line allows.
                log.warning("%s: %s %r without a valid CSRF token", ctx.client_ip,
                            bottle.request.method[:20], bottle.request.path[:200])
                raise bottle.HTTPError(403, ctx._(
                    "The form has expired or did not come from this site. Please reload the"
                    " page and try again."))

    @staticmethod
    def _needs_token(ctx: RequestContext) -> bool:
        """Whether this POST must carry a CSRF token: every one, except logging out of a
        session that is already gone (idle too long, ended elsewhere, its user removed).
        That ends nothing on the server and only clears the dead cookie, and the token
        the page was made with died with the session: asking for it answered 403 and
        left the browser holding the cookie.  A live session's logout still needs the
        live session's token, so another site's form cannot log an administrator out
        (and a cross-site POST is refused above in any case)."""
        return not (bottle.request.path == LOGOUT_PATH and ctx.session is None)

    @staticmethod
    def _after_request() -> None:
        ctx = bottle.request.environ.get(CONTEXT_KEY)
        if ctx is None:
            return
        # The page is made: bottle keeps each thread's last request until its next one,
        # and with it the form (eight threads, eight 16 MiB pastes kept).
        ctx.forget_form()

    def _static(self, name: str) -> bottle.HTTPResponse:
        response = bottle.static_file(name, root=STATIC)
        response.set_header("Cache-Control", "max-age=3600")
        return response

    def _error_page(self, error: bottle.HTTPError) -> str:
        ctx = bottle.request.environ.get(CONTEXT_KEY)
        if ctx is None:
            ctx = RequestContext(self)
        if error.status_code == 500:
            log.error("internal error on %r: %s", bottle.request.path, error.traceback)
            text = ctx._("Something went wrong on the appliance; the details are in its log.")
        elif error.status_code == 404 and str(error.body).startswith("Not found"):
            text = ctx._("There is no such page.")
        elif error.status_code == 405:
            text = ctx._("This page does not take that kind of request.")
        else:
            text = error.body if isinstance(error.body, str) else ""
        bottle.response.content_type = "text/html; charset=utf-8"
        return ctx.render("error", title=ctx._("Error {code}", code=error.status_code),
                          status=error.status_code, text=text)


def create_app(services: Services, providers: Providers | None = None) -> security.WSGIApp:
    """The WSGI application of the web UI."""
    return WebApp(services, providers).wsgi()
