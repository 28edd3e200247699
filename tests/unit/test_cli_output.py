import pytest

from portcullis import config
from portcullis.cli.common import print_table
from portcullis.cli.settings import _shown
from portcullis.directory.settings import SETTINGS

pytestmark = pytest.mark.gateway


def test_a_table_cell_with_several_lines_keeps_its_columns(capsys):
    print_table(["name", "value", "meaning"], [("a", "one,\ntwo", "first"), ("bb", "x", "")])
    assert capsys.readouterr().out.splitlines() == [
        "NAME  VALUE  MEANING",
        "a     one,   first",
        "      two",
        "bb    x",
    ]


def test_a_shown_setting_reads_back_as_the_same_value(tmp_path):
    cfg = config.parse({"smtp": {"listen": "127.0.0.1:2525"}, "web": {"listen": "127.0.0.1:8080"},
                        "store": {"dir": str(tmp_path)}})
    for name, setting in SETTINGS.items():
        value = setting.default(cfg)
        shown = _shown(value)
        if setting.kind is list:
            assert max(len(line) for line in shown.splitlines()) <= 80, name
        if value != []:  # the empty list shows as "(none)"
            assert setting.coerce(shown) == value, name


def test_escape_sequences_from_a_sender_never_reach_the_terminal(capsys):
    hostile = "Invoice\x1b]0;owned\x07\x1b[2J\u202etxt.exe\x9b1m"
    print_table(["subject"], [(hostile,)])
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\x9b" not in shown and "Invoice?]0;owned??[2J?txt.exe?1m" in shown
