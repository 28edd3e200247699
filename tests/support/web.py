"""The web UI under test: ``portcullis web`` as a real process, a small HTTP client that
keeps cookies and reads CSRF tokens, and headless Debian Chromium for browser tests."""

from __future__ import annotations

import contextlib
import html
import http.client
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from tests.support import process
from tests.support.gateway import PORTCULLIS, Gateway, wait_for_port

CHROMIUM = "/usr/bin/chromium"
# Flags from TESTING-NOTES: headless Debian chromium without sandbox or network chatter.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


class WebUI:
    """``portcullis web`` with the configuration (and state) of a test gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.port = gateway.web_port
        self.stderr_path = gateway.state_dir / "web.stderr"
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebUI:
        self.process = subprocess.Popen([*PORTCULLIS, "web"], env=self.gateway.env,
                                        stdout=subprocess.DEVNULL,
                                        stderr=self.stderr_path.open("ab"))
        try:
            wait_for_port("127.0.0.1", self.port, process=self.process)
        except (RuntimeError, TimeoutError):
            raise RuntimeError(f"web UI did not start:\n{self.stderr()}") from None
        return self

    def stop(self) -> None:
        process.stop(self.process)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def setup_code(self) -> str:
        return (self.gateway.state_dir / "setup-code").read_text().strip()

    def client(self) -> HttpClient:
        return HttpClient(self.port)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def all_headers(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def location(self) -> str:
        return self.header("Location")

    def csrf(self) -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.body)
        assert match, f"no CSRF token in page:\n{self.body[:2000]}"
        return html.unescape(match.group(1))


@dataclass
class HttpClient:
    """A browser-less client: keeps cookies, never follows redirects by itself."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict | list | None = None,
                headers: dict[str, str] | None = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": f"127.0.0.1:{self.port}", **self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        reply = connection.getresponse()
        response = Response(reply.status, reply.getheaders(),
                            reply.read().decode("utf-8", "replace"))
        connection.close()
        for cookie in response.all_headers("Set-Cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in cookie.lower() or "expires=thu, 01 jan 1970" in cookie.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def get(self, path: str, **kwargs: object) -> Response:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, form: dict | list, **kwargs: object) -> Response:
        return self.request("POST", path, form=form, **kwargs)  # type: ignore[arg-type]

    def submit(self, page: str, action: str, form: dict) -> Response:
        """Post a form the way a browser would: with the CSRF token of the page showing it."""
        token = self.get(page).csrf()
        return self.post(action, {**form, "csrf_token": token})

    def login(self, username: str, password: str) -> Response:
        response = self.submit("/login", "/login", {"username": username,
                                                    "password": password})
        return response


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), \
        "Debian's chromium is missing (make packages)"
    # Playwright gives every launch a fresh temporary profile (--user-data-dir) itself.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
