"""The message catalogue: complete for English, translations fall back to English."""

from __future__ import annotations

import json

import pytest

from portcullis.web import i18n

pytestmark = pytest.mark.webui


def test_english_catalogue_holds_exactly_the_messages_the_ui_uses():
    used = set(i18n.extract(i18n.source_files()))
    catalogue = json.loads((i18n.LOCALE_DIR / "en.json").read_text())
    missing, stale = used - set(catalogue), set(catalogue) - used
    assert not missing, f"add to en.json (python -m portcullis.web.i18n): {sorted(missing)}"
    assert not stale, f"no longer used, remove from en.json: {sorted(stale)}"


def test_every_translation_uses_only_known_messages_and_placeholders():
    english = json.loads((i18n.LOCALE_DIR / "en.json").read_text())
    for language in i18n.languages():
        messages = json.loads((i18n.LOCALE_DIR / f"{language}.json").read_text())
        assert set(messages) <= set(english), language
        for msgid, text in messages.items():
            assert sorted(_fields(text)) == sorted(_fields(msgid)) or not text, (language,
                                                                                  msgid)


def _fields(text):
    import string

    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def test_accept_language_picks_a_known_language_or_english():
    assert i18n.negotiate("").language == "en"
    assert i18n.negotiate("xx-YY, zz;q=0.8").language == "en"
    assert i18n.negotiate("en-GB,en;q=0.9").language == "en"


def test_message_parameters_are_filled_and_unknown_messages_pass_through():
    catalogue = i18n.catalogue("en")
    assert catalogue.gettext("User {name} added.", name="dora") == "User dora added."
    assert catalogue.gettext("never declared") == "never declared"


def test_a_translation_replaces_english_and_falls_back_where_missing(tmp_path, monkeypatch):
    (tmp_path / "en.json").write_text(json.dumps({"Log in": "Log in", "Log out": "Log out"}))
    (tmp_path / "de.json").write_text(json.dumps({"Log in": "Anmelden"}))
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.languages.cache_clear()
    i18n.catalogue.cache_clear()
    try:
        german = i18n.negotiate("de-CH,de;q=0.9,en;q=0.5")
        assert german.gettext("Log in") == "Anmelden"
        assert german.gettext("Log out") == "Log out"
        # A weight is 0 to 1: "q=nan" sorted anywhere, "q=inf" above every real one.
        for odd in ("nan", "inf", "1e999", "2"):
            assert i18n.negotiate(f"en;q={odd},de;q=0.5").language == "de", odd
    finally:
        i18n.languages.cache_clear()
        i18n.catalogue.cache_clear()


def test_messages_split_over_lines_in_python_are_extracted_whole(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('def f(ctx):\n    return ctx._("Too many tries. Try again in"\n'
                    '                  " {minutes} minute(s).", minutes=3)\n'
                    '# _("not a call in a comment")\n')
    view = tmp_path / "view.tpl"
    view.write_text("<p>{{_('Saved.')}}</p>\n")
    assert i18n.extract([page, view]) == ["Too many tries. Try again in {minutes} minute(s).",
                                          "Saved."]
