"""The settings page: the text a form shows for a value reads back as that same value, so
saving one setting never changes another."""

from __future__ import annotations

import pytest

from portcullis.directory.settings import SETTINGS
from portcullis.web.pages.settings import shown

pytestmark = pytest.mark.webui


@pytest.mark.parametrize("value", [5.1234567, 0.1 + 0.2, -7.000001, 999.99999, 5.0, -0.5,
                                   1e-7])
def test_a_threshold_shown_in_the_form_reads_back_unchanged(value):
    setting = SETTINGS["tag_threshold"]
    assert setting.coerce(shown(value)) == value
    assert shown(5.0) == "5"
