"""The DATA phase's text, gathered from whole blocks of input rather than line by line.

RFC 5321 4.5.2: the message ends at the first line that is a single ".", and a leading
"." of every other line is removed.  aiosmtpd reads DATA one line at a time (a coroutine
call, a search and a copy for each of a message's lines); ``MessageCollector`` takes what
the connection has buffered in one piece and finds the end, the dots and any line over
the limit with bytes methods, with the same outcome as reading lines one by one
(``tests/unit/test_dataphase.py`` holds the two side by side):

- a line longer than ``line_limit`` bytes (without its CRLF, and without the leading dot
  of a stuffed line: that dot is the transparency procedure's, not the message's)
  refuses the message with 500;
- lines adding up to more than ``size_limit`` bytes refuse it with 552: RFC 1870's size,
  which SIZE announces and clients declare, counts CRLFs but neither the end line nor
  the dots that stuffing doubled (as Postfix counts it);
- whichever of the two comes first in the message is the reply; either way the message is
  read to its end, holding no more than about ``size_limit`` bytes meanwhile.
"""

from __future__ import annotations

_LINE_START = b"\r\n"
# The end of the message, found with the CRLF of the line before it (the collector
# starts with a CRLF of its own, so a message that is just "." ends the same way).
_END = b"\r\n.\r\n"


class MessageCollector:
    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit or 0
        self.line_limit = line_limit
        self.refusal: str | None = None
        # The message as received, behind a CRLF standing for the line start DATA begins
        # at; once refused, only a tail long enough to hold part of the end line.
        self._text = bytearray(_LINE_START)
        self._checked = len(_LINE_START)   # lines before this offset have been judged
        self._stuffed = 0                  # stuffed dots in the judged lines

    def feed(self, chunk: bytes) -> bytes | None:
        """Take the next bytes of input; return None while the message goes on, else the
        bytes that followed its end (the client's next commands, pipelined)."""
        search_from = max(len(self._text) - len(_END) + 1, 0)
        self._text += chunk
        end = self._text.find(_END, search_from)
        if end < 0:
            if self.refusal is None:
                # Lines can only have ended in what just came: a client sending a long
                # line a byte at a time is not searched back over the whole line each time.
                last = self._text.rfind(_LINE_START, search_from)
                self._judge(last + len(_LINE_START) if last >= 0 else self._checked,
                            final=False)
            if self.refusal is not None:
                # Nothing more is kept: only what could begin the end line.
                del self._text[:-(len(_END) - 1)]
                self._checked = 0
            return None
        if self.refusal is None:
            self._judge(end + len(_LINE_START), final=True)
        rest = bytes(self._text[end + len(_END):])
        del self._text[end + len(_LINE_START):]
        return rest

    def _judge(self, upto: int, *, final: bool) -> None:
        """Look at the lines between ``_checked`` and ``upto`` (a line start; at the end,
        the start of the end line) for the first that is too long or passes the size
        limit; a line not yet ended counts as too long once it is longer than allowed."""
        start = self._checked
        if upto > start:
            offset = start
            for line in self._text[start:upto - len(_LINE_START)].split(_LINE_START):
                offset += len(line) + len(_LINE_START)
                stuffed = line.startswith(b".")
                if len(line) - stuffed > self.line_limit:
                    self._refuse_long_line()
                    return
                self._stuffed += stuffed
                # Bytes of the message so far: offsets count the collector's own CRLF.
                if self.size_limit and \
                        offset - len(_LINE_START) - self._stuffed > self.size_limit:
                    self.refusal = f"552 5.3.4 Message too big (over {self.size_limit} bytes)"
                    return
            self._checked = upto
        if not final and len(self._text) - self._checked > \
                self.line_limit + 1 + self._text.startswith(b".", self._checked):
            # An unfinished line already longer than any line may be (a CR at its end
            # may yet start its CRLF; a leading dot is the stuffing's).
            self._refuse_long_line()

    def _refuse_long_line(self) -> None:
        self.refusal = f"500 5.5.2 Line too long (over {self.line_limit} bytes)"

    def message(self) -> bytes:
        """The message with its dots unstuffed (only when it was not refused)."""
        assert self.refusal is None
        # One copy of the text at a time beside the result: messages run to tens of MB.
        if b"\r\n." in self._text:
            self._text = self._text.replace(b"\r\n.", b"\r\n")
        with memoryview(self._text) as text:
            return bytes(text[len(_LINE_START):])
