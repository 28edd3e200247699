"""The update history in the store, as the agent writes it and the web UI reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from portcullis import config
from portcullis.services import Services
from portcullis.store import open_store
from portcullis.update import agent, history
from portcullis.update.attempts import finish_attempt, start_attempt
from portcullis.web.providers import Providers, panel

pytestmark = pytest.mark.updates


@pytest.fixture
def services(tmp_path: Path) -> Services:
    appliance = config.parse({"smtp": {"listen": "127.0.0.1:2525"},
                              "web": {"listen": "127.0.0.1:8080"},
                              "store": {"dir": str(tmp_path)}})
    store = open_store(tmp_path)
    yield Services(appliance, store)
    store.close()


def test_history_lists_every_attempt_newest_first_with_its_outcome(services):
    first = start_attempt(services.store, "207.219.44.10")
    finish_attempt(services.store, first, outcome="applied", target="app", version="0.2.0",
                   previous="0.1.0", signed_by=["aa", "bb"])
    second = start_attempt(services.store, "198.51.100.66")
    finish_attempt(services.store, second, outcome="rejected",
                   reason="client 198.51.100.66 is outside the vendor netblocks")
    start_attempt(services.store, "207.219.44.10")          # still receiving (or cut off)

    attempts = history(services.store)

    assert [a.outcome for a in attempts] == ["receiving", "rejected", "applied"]
    assert attempts[2].signed_by == "aa,bb"
    assert attempts[1].reason.endswith("outside the vendor netblocks")
    assert [a.id for a in history(services.store, limit=1)] == [attempts[0].id]


def test_web_ui_panel_gets_the_history_through_its_provider(services):
    attempt = start_attempt(services.store, "207.219.44.10")
    finish_attempt(services.store, attempt, outcome="rolled-back", target="app",
                   version="0.2.1", previous="0.1.0", reason="health check failed: exit 1")

    shown = panel(Providers(services), "update_history", limit=50)

    assert shown.state == "ok"
    (row,) = shown.data
    assert (row["outcome"], row["version"], row["previous"], row["reason"]) == (
        "rolled-back", "0.2.1", "0.1.0", "health check failed: exit 1")
    assert len(row["started"]) == len("2025-01-31 12:00:00")


def test_unknown_outcome_is_refused(services):
    attempt = start_attempt(services.store, "207.219.44.10")
    with pytest.raises(ValueError, match="unknown outcome"):
        finish_attempt(services.store, attempt, outcome="maybe")


def test_the_agent_history_table_shows_a_pushing_host_s_text_harmlessly(tmp_path, capsys):
    # A rejection's reason quotes what the pushing host sent (a manifest field, a client
    # name): it must not drive the terminal of the administrator reading the history.
    (tmp_path / "portcullis.toml").write_text(f"""
[smtp]
listen = "127.0.0.1:2525"
[web]
listen = "127.0.0.1:8080"
[store]
dir = "{tmp_path / 'store'}"
""")
    (tmp_path / "agent.toml").write_text(
        f'[agent]\nportcullis_config = "{tmp_path / "portcullis.toml"}"\n')
    store = open_store(tmp_path / "store")
    attempt = start_attempt(store, "207.219.44.10")
    finish_attempt(store, attempt, outcome="rejected",
                   reason="manifest: bad version 'x\x1b]0;owned\x07\x1b[2J\u202edeilppa'")
    store.close()

    assert agent.main(["--config", str(tmp_path / "agent.toml"), "history"]) == 0

    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "bad version 'x?]0;owned??[2J?deilppa'" in shown
