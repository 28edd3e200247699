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


@pytest.mark.firewall
def test_firewall_status_says_how_many_entries_it_does_not_list(capsys):
    # The monitor lists at most 1,000 blocked sources and scanners; the rest were counted
    # as if they did not exist, and the black list by the names shown.
    from portcullis.cli.firewall import _print_status
    from portcullis.firewall.control import FirewallStatus, SetEntry
    status = FirewallStatus(loaded=True, scanners=[SetEntry("192.0.2.9", 60)],
                            scanners_total=25_000, black_list=["198.51.100.0/24"],
                            black_list_total=3)
    _print_status(status)
    out = capsys.readouterr().out
    assert "192.0.2.9" in out and "... and 24999 more" in out
    assert "Black list dropped: 3 networks" in out


@pytest.mark.firewall
@pytest.mark.parametrize(("argv", "named"), [
    (["firewall", "block", "192.0.2.1", "--minutes", "nan"], "--minutes"),
    (["firewall", "block", "192.0.2.1", "--minutes", "1e999"], "--minutes"),
    (["tarpit", "--hold-minutes", "nan"], "--hold-minutes"),
    (["tarpit", "--hold-minutes", "inf"], "--hold-minutes"),
    (["tarpit", "--trickle-seconds=-inf"], "--trickle-seconds"),
    (["tarpit", "--per-source", "0"], "--per-source"),
])
def test_firewall_and_tarpit_numbers_are_finite_and_in_range(capsys, argv, named):
    # type=float took "nan" and "inf": a tarpit holding connections for nan minutes never
    # let one go (now - since > nan is false), so the scanners filled its slots.
    from portcullis.cli.main import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    error = capsys.readouterr().err
    assert f"argument {named}: must be a" in error and "not '" in error
    assert build_parser().parse_args(["tarpit", "--hold-minutes", " 60 "]).hold_minutes == 60.0
