"""Reading an urlencoded form in chunks: the same fields as the standard library's
parser, however the body is cut, in memory about twice the largest value."""

from __future__ import annotations

import io
import tracemalloc
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portcullis.web import forms

pytestmark = pytest.mark.webui


def read(body: bytes, max_fields: int = 1000) -> list[tuple[str, str]]:
    return list(forms.read_urlencoded(io.BytesIO(body), len(body), max_fields))


@given(body=st.text(alphabet="ab=&%+;4F0\n@é", max_size=40),
       chunk=st.sampled_from([1, 2, 3, 5, 64 * 1024]))
def test_fields_are_those_the_standard_parser_finds_however_the_body_is_cut(body, chunk):
    try:
        expected = parse_qsl(body, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        expected = None
    original, forms.CHUNK = forms.CHUNK, chunk
    try:
        found = read(body.encode())
    except forms.FormError as exc:
        assert not exc.too_large
        found = None
    finally:
        forms.CHUNK = original
    assert found == expected


def test_text_that_is_not_utf8_is_refused_not_replaced():
    with pytest.raises(forms.FormError) as refused:
        read(b"note=B%FCro")
    assert not refused.value.too_large


def test_more_fields_than_allowed_are_refused_as_too_large():
    assert len(read(b"x=&" * 10, max_fields=10)) == 10
    with pytest.raises(forms.FormError) as refused:
        read(b"x=&" * 11, max_fields=10)
    assert refused.value.too_large


def test_a_large_value_costs_about_twice_its_size_not_a_string_per_escape():
    # 500,000 addresses: an escape at every "@" and line end.  Bottle's parser peaked at
    # 340 MB for this body (unquote splits the value at each "%").
    pasted = "\n".join(f"u{n:06d}@example.com" for n in range(500_000))
    body = urlencode({"addresses": pasted}).encode()
    tracemalloc.start()
    try:
        fields = read(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fields == [("addresses", pasted)]
    assert peak < 3 * len(pasted), f"{peak // 2**20} MiB"
