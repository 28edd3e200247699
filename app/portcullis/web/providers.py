"""Panels whose data come from other parts of the appliance, behind one small interface.

ClamAV status, signature updates, the update history, the firewall's blocked sources
and the Top Spammers / Top Legitimate lists are provided by their own packages
(``portcullis.antivirus``, ``portcullis.update``, ``portcullis.firewall``,
``portcullis.reputation``).  Each panel names the function it calls in ``PROVIDERS``;
when the package or function is absent, the panel says "not available on this system".

Calling convention: parameters named ``services``, ``config`` or ``store`` receive the
web process's services, configuration and store; other keyword arguments (``limit``) are
passed when the function accepts them.  A coroutine function is run to completion.
Results may be a dataclass, a dict, an object with ``to_json()``, or a list of these.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portcullis.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    key: str
    module: str
    function: str
    purpose: str


PROVIDERS: dict[str, Provider] = {p.key: p for p in [
    Provider("clamav_status", "portcullis.antivirus", "status",
             "clamd reachable, engine and signature version, database date"),
    Provider("clamav_update", "portcullis.antivirus", "update_now",
             "fetch new ClamAV signatures now (Server Admin -> Update)"),
    Provider("update_history", "portcullis.update", "history",
             "every update attempt with its outcome, newest first"),
    Provider("firewall_status", "portcullis.firewall", "status",
             "blocked SSH sources and named counters"),
    Provider("firewall_block", "portcullis.firewall", "block",
             "block a source from SSH for some minutes"),
    Provider("firewall_unblock", "portcullis.firewall", "unblock",
             "lift a block (SSH block set and scanner set)"),
    Provider("top_spammers", "portcullis.reputation", "top_spammers",
             "the top 50 MTAs by unwanted connections (50+ connections, 95%+ unwanted)"),
    Provider("top_legitimate", "portcullis.reputation", "top_legitimate",
             "the top 50 MTAs by accepted connections (50+ connections, 95%+ accepted)"),
]}


class NotAvailable(Exception):
    """The part that provides a panel is not installed on this system."""


class ProviderFailed(Exception):
    """The provider is there but failed; the message says how."""


class Providers:
    def __init__(self, services: Services, table: dict[str, Provider] | None = None) -> None:
        self.services = services
        self.table = PROVIDERS if table is None else table

    def function(self, key: str) -> Callable[..., Any] | None:
        provider = self.table.get(key)
        if provider is None:
            return None
        try:
            module = importlib.import_module(provider.module)
        except ImportError:
            return None
        function = getattr(module, provider.function, None)
        return function if callable(function) else None

    def available(self, key: str) -> bool:
        return self.function(key) is not None

    def call(self, key: str, **extra: Any) -> Any:
        """Call a provider; NotAvailable when absent, ProviderFailed when it fails."""
        function = self.function(key)
        if function is None:
            raise NotAvailable(key)
        kwargs = self._arguments(function, extra)
        try:
            result = function(**kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except Exception as exc:
            log.exception("provider %s failed", key)
            raise ProviderFailed(f"{type(exc).__name__}: {exc}") from exc
        return result

    def _arguments(self, function: Callable[..., Any], extra: dict[str, Any]) -> dict:
        known = {"services": self.services, "config": self.services.config,
                 "store": self.services.store}
        signature = inspect.signature(function)
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        kwargs: dict[str, Any] = {}
        for name, parameter in signature.parameters.items():
            if name in known:
                kwargs[name] = known[name]
            elif name in extra:
                kwargs[name] = extra[name]
            elif parameter.default is parameter.empty and parameter.kind not in (
                    parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ProviderFailed(f"{function.__module__}.{function.__name__} needs"
                                     f" an argument {name!r} the web UI cannot give")
        if takes_any:
            kwargs.update({k: v for k, v in extra.items() if k not in kwargs})
        return kwargs


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def plain(value: Any) -> Any:
    """A provider's result as dicts, lists and scalars, whatever form it came in."""
    if hasattr(value, "to_json") and callable(value.to_json):
        return plain(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def table(rows: Any) -> tuple[list[str], list[dict]]:
    """Columns (in order of first appearance) and rows of a list of records."""
    records = [r if isinstance(r, dict) else {"value": r} for r in (plain(rows) or [])]
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns), records


@dataclass
class Panel:
    """What a page shows for one provider: its data, or why there is none."""

    key: str
    state: str                 # "ok", "absent" (not on this system) or "failed"
    data: Any = None
    error: str = ""


def panel(providers: Providers, key: str, **extra: Any) -> Panel:
    try:
        return Panel(key, "ok", plain(providers.call(key, **extra)))
    except NotAvailable:
        return Panel(key, "absent")
    except ProviderFailed as exc:
        return Panel(key, "failed", error=str(exc))
