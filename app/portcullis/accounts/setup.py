"""First start: the super administrator's first password is set with a one-time code.

On the appliance the image writes the code at first boot to ``<state>/setup-code``
(``/var/lib/portcullis/setup-code``) and shows it on the console.  Where there is no such
file (a developer's ``make run``), the web process makes one, writes it there (mode 0600)
and prints it on its standard error.  Whoever can open the web page but cannot read the
file or the process output cannot take the appliance over.  The code is only good while
no super administrator exists, and the file is removed once one does.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import sys
from pathlib import Path

from portcullis.accounts.users import SUPER, User, add_user, has_super_admin
from portcullis.store import Store

log = logging.getLogger(__name__)

FILE_NAME = "setup-code"
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O or 1/I to misread


class SetupError(ValueError):
    """First-start setup refused (wrong code, already done)."""


def code_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def _normalise(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def new_code() -> str:
    """Twenty characters in groups of four: about 100 bits, easy to type from a console."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "-".join(raw[i:i + 4] for i in range(0, 20, 4))


def ensure_code(store: Store, state_dir: Path, announce: bool = True) -> str | None:
    """The code setup will ask for, making one if needed; None once setup is done.

    Raises OSError when no code exists and none can be written (read-only state).
    """
    path = code_path(state_dir)
    if has_super_admin(store):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text(encoding="utf-8").strip()
        if _normalise(existing):
            return existing
    code = new_code()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another thread or process made one a moment ago: that one counts.
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(code + "\n")
    if announce:
        print(f"portcullis: first start: the setup code for the web administration is {code}"
              f" (also in {path})", file=sys.stderr, flush=True)
    return code


def complete_setup(store: Store, state_dir: Path, code: str, name: str,
                   password: str) -> User:
    """Create the first super administrator if the code is right and none exists yet."""
    try:
        expected = code_path(state_dir).read_text(encoding="utf-8")
    except OSError:
        raise SetupError("no setup code is waiting: setup is done or the code file is"
                         " missing") from None
    if not _normalise(expected) or not hmac.compare_digest(_normalise(code).encode(),
                                                            _normalise(expected).encode()):
        raise SetupError("the setup code is wrong")
    with store.transaction():
        # In the transaction: two browsers racing cannot both become super administrator.
        if has_super_admin(store):
            raise SetupError("setup is already done")
        user = add_user(store, name, SUPER, password=password)
    try:
        code_path(state_dir).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("setup done, but %s could not be removed: %s", code_path(state_dir), exc)
    return user
