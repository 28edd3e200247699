"""Unwanted attachments: blocked types by name or by content, also inside archives;
archive bombs; encrypted archives nobody can look into.

FAQ: PerfectMail rejects every message carrying "an unwanted e-mail attachment" whoever
sent it.  A file is blocked when any name it carries ends in a blocked extension (after
undoing the tricks: ``invoice.pdf.exe``, padding, right-to-left overrides, trailing dots)
or when its bytes say it is a blocked type whatever it is called (an executable named
``invoice.pdf``).  The list is the runtime setting ``blocked_extensions``.

Encrypted archives whose password is not in the message cannot be scanned: with the
setting ``reject_encrypted_archives`` they are rejected, otherwise they add a little to the
score and say so; so is content no scanner could read otherwise (a RAR member clamd
cannot open and the inventory could not unpack within its budgets).  Archive bombs
(see ``antivirus.archives``) are rejected.  Office documents with macros
(``antivirus.office``) are rejected, scored or let through as the setting
``office_macros`` says.  Web pages, SVG images and web archives (.mht) mailed as
attachments that ask for a password or build a file to download (``antivirus.markup``)
are scored enough to be tagged.
"""

from __future__ import annotations

from portcullis.antivirus import filetypes
from portcullis.antivirus.archives import File, Problem, shared_inventory
from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import Flag, Symbol

ENCRYPTED_SCORE = 1.0
DECEPTIVE_SCORE = 4.0
UNREADABLE_SCORE = 1.0
MACROS_SCORE = 4.0            # alone below the default Tag threshold (5), tips a doubtful one
ACTIVE_SCORE = 5.0            # a mailed login page or smuggling page: tagged on its own


class Attachments(Check):
    name = "attachments"
    stage = Stage.DATA
    description = "blocked attachment types (by name and content, inside archives too), " \
                  "archive bombs, encrypted archives"
    timeout = 60.0
    # Unfinished, the inventory has judged nothing: a blocked .exe must not pass because a
    # hostile document next to it was slow to read.
    fail_closed = True

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        settings = ctx.snapshot.settings
        blocked = filetypes.normalise_extension_list(settings.get("blocked_extensions", []))
        inventory = await shared_inventory(ctx)
        for bomb in inventory.problems(Problem.BOMB):
            return [Symbol("ARCHIVE_BOMB", 100.0,
                           f"Attachment: {bomb.shown} is an archive bomb ({bomb.detail})",
                           Flag.MALWARE)]
        for file in inventory.files:
            why = blocked_because(file, blocked)
            if why:
                return [Symbol("ATTACHMENT_BLOCKED", 100.0, f"Attachment: {file.shown} ({why})",
                               Flag.MALWARE)]
        found: list[Symbol] = []
        macros = inventory.problems(Problem.MACROS)
        policy = settings.get("office_macros", "score")
        if macros and policy == "reject":
            return [Symbol("OFFICE_MACROS", 100.0,
                           f"Attachment: {macros[0].shown} (Office document with macros)",
                           Flag.MALWARE)]
        if macros and policy == "score":
            found.append(Symbol("OFFICE_MACROS", MACROS_SCORE,
                                f"Office document with macros: {macros[0].shown}"))
        for file in inventory.files:
            trick = next(filter(None, (filetypes.deceptive(n) for n in file.names)), None)
            if trick:
                found.append(Symbol("ATTACHMENT_DECEPTIVE_NAME", DECEPTIVE_SCORE,
                                    f"deceptive file name {file.shown}: {trick}"))
                break
        active = inventory.problems(Problem.ACTIVE)
        if active:
            found.append(Symbol("ATTACHMENT_ACTIVE_CONTENT", ACTIVE_SCORE,
                                f"{active[0].shown}: {active[0].detail}"))
        # Content no scanner saw, encrypted or not: an executable may hide in either.
        blind = [f for f in inventory.findings if f.problem in (Problem.LOCKED,
                                                                 Problem.UNSCANNED)]
        if blind:
            found.append(encrypted_symbol(blind[0].shown, blind[0].detail,
                                          bool(settings.get("reject_encrypted_archives")),
                                          encrypted=blind[0].problem is Problem.LOCKED))
        unreadable = inventory.problems(Problem.UNREADABLE)
        if unreadable:
            found.append(Symbol("ARCHIVE_UNREADABLE", UNREADABLE_SCORE,
                                f"cannot look inside {unreadable[0].shown}: "
                                f"{unreadable[0].detail}"))
        return found


def blocked_because(file: File, blocked: frozenset[str]) -> str | None:
    """Why this file is unwanted (a blocked extension on any of its names, or blocked
    content under any name), or None."""
    for name in file.names:
        extensions = filetypes.extensions(name)
        if extensions and extensions[-1] in blocked:
            trick = filetypes.deceptive(name)
            return f"blocked type .{extensions[-1]}" + (f", {trick}" if trick else "")
    if file.detected in blocked:
        return f"{file.detected} content under the name {filetypes.shown(file.names[0])}" \
            if file.names else f"{file.detected} content"
    return None


def encrypted_symbol(shown: str, detail: str, reject: bool, *, encrypted: bool = True,
                     ) -> Symbol:
    """An encrypted archive (or document) no scanner could look into, or content no
    scanner could read for another reason (not ``encrypted``): the same doubt, the same
    setting (``reject_encrypted_archives``)."""
    if reject:
        return Symbol("ENCRYPTED_ARCHIVE", 100.0,
                      f"Attachment: {'encrypted ' if encrypted else ''}{shown} cannot be "
                      "scanned", Flag.MALWARE)
    return Symbol("ENCRYPTED_ARCHIVE", ENCRYPTED_SCORE, f"{shown}: {detail}, not scanned")
