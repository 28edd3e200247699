"""``mime.IndexedMessage``: header look-ups through an index give exactly what
``email.message.Message`` gives, for any header list and after any change to it."""

import copy
import pickle
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portcullis.mime import IndexedMessage, parse_headers, parse_message

pytestmark = pytest.mark.gateway

# Few distinct letters, so that names collide in every mix of case; a surrogate stands
# for an 8-bit byte as the parser keeps it.
NAME = st.one_of(st.text(alphabet="aBcK-\udce4\u0130", min_size=1, max_size=4),
                 st.sampled_from(["Content-Type", "CONTENT-TYPE", "content-disposition"]))
VALUE = st.text(alphabet="a;=*' \"\udcff\r\n\t", max_size=10)
CHANGE = st.one_of(
    st.tuples(st.just("set"), NAME, VALUE),
    st.tuples(st.just("set_raw"), NAME, VALUE),
    st.tuples(st.just("add"), NAME, VALUE),
    st.tuples(st.just("delete"), NAME),
    st.tuples(st.just("replace"), NAME, VALUE),
    st.tuples(st.just("param"), VALUE),
    st.tuples(st.just("boundary"), VALUE),
    st.tuples(st.just("default_type"), st.sampled_from(["message/rfc822", "text/plain"])),
)


def change(message: Message, step: tuple) -> str | None:
    """Apply one change; what it raised, if anything (the same for both classes)."""
    kind, *args = step
    try:
        if kind == "set":
            message[args[0]] = args[1]
        elif kind == "set_raw":
            message.set_raw(*args)
        elif kind == "add":
            message.add_header(*args)
        elif kind == "delete":
            del message[args[0]]
        elif kind == "replace":
            message.replace_header(*args)
        elif kind == "default_type":
            message.set_default_type(args[0])
        elif kind == "param":
            message.set_param("charset", args[0])
        else:
            message.set_boundary(args[0])
    except Exception as exc:      # the same for both: KeyError, HeaderParseError, ...
        return type(exc).__name__
    return None


def shown(value: object) -> object:
    """A value as it compares: a Header (fields with 8-bit bytes) by its text."""
    if isinstance(value, list):
        return [shown(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    return type(value), outcome(lambda: str(value))


def outcome(read) -> object:
    """What a reader returns, or the exception it raises (malformed parameters)."""
    try:
        return read()
    except Exception as exc:
        return type(exc)


def lookups(message: Message, names: list[str]) -> list:
    found: list = [(shown(message.get(name, "absent")), shown(message.get_all(name)),
                    name in message, shown(message[name])) for name in names]
    for read in (message.get_content_type, message.get_content_maintype,
                 message.get_params, message.get_content_charset,
                 message.get_filename, message.get_boundary,
                 lambda: message.get_params(header=names[0], unquote=False),
                 lambda: message.get_param("charset", "none", header=names[-1])):
        found.append(outcome(read))
    return found


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(NAME, VALUE), max_size=12),
       changes=st.lists(CHANGE, max_size=6),
       queries=st.lists(NAME, max_size=6))
def test_indexed_lookups_equal_message_lookups_after_any_changes(fields, changes, queries):
    ours, theirs = IndexedMessage(), Message()
    for name, value in fields:
        ours.set_raw(name, value)
        theirs.set_raw(name, value)
    names = [*queries, *(n for n, _ in fields), *(n.swapcase() for n, _ in fields),
             "Content-Type", "content-disposition"]
    assert lookups(ours, names) == lookups(theirs, names)
    for step in changes:
        assert change(ours, step) == change(theirs, step)
        names += [a for a in step[1:2] if a and step[0] != "default_type"]
        assert list(ours.raw_items()) == list(theirs.raw_items())
        assert lookups(ours, names) == lookups(theirs, names)


def test_parsed_messages_and_their_parts_are_indexed():
    content = (b"From: a@b.test\r\nMIME-Version: 1.0\r\n"
               b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
               b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
               b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ny\r\n--b--\r\n")
    parts = list(parse_message(content).walk())
    assert len(parts) == 4       # root, text, message/rfc822 and the message it holds
    assert all(isinstance(part, IndexedMessage) for part in parts)
    assert isinstance(parse_headers(content), IndexedMessage)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_an_indexed_message_pickles_as_a_message_does(protocol):
    """Every pickle protocol takes a message whose index was built (protocols 0 and 1
    refused the index's slots), and the unpickled message reads its own headers."""
    message = parse_message(b"Content-Type: text/plain; charset=x\r\nX: 1\r\n\r\nbody\r\n")
    assert message.get_content_charset() == "x"         # builds the index
    restored = pickle.loads(pickle.dumps(message, protocol))
    assert list(restored.raw_items()) == list(message.raw_items())
    assert restored.get_payload() == "body\r\n"
    restored.replace_header("Content-Type", "text/html; charset=y")
    assert (restored.get_content_type(), restored.get_content_charset()) == ("text/html", "y")
    assert (message.get_content_type(), message.get_content_charset()) == ("text/plain", "x")


def test_a_shallow_copy_reads_the_header_list_it_shares_as_a_message_does():
    """copy.copy shares the header list (email.message.Message's behaviour): a field one
    copy replaces in place is what the other reads too, not what its index held."""
    content = b"Content-Type: text/plain; charset=x\r\nX: 1\r\n\r\nbody\r\n"
    ours, theirs = parse_message(content), Message()
    for name, value in ours.raw_items():
        theirs.set_raw(name, value)
    for message in (ours, theirs):
        assert message.get_content_charset() == "x"     # builds the index
        copied = copy.copy(message)
        assert copied.get_content_charset() == "x"
        copied.replace_header("Content-Type", "text/html; charset=y")
        copied.replace_header("X", "2")
    assert lookups(ours, ["X", "Content-Type"]) == lookups(theirs, ["X", "Content-Type"])
    assert (ours.get_content_type(), ours["X"]) == ("text/html", "2")
