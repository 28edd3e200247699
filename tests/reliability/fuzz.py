"""Run one fuzz target under atheris (libFuzzer), bounded by a run count.

    python -m tests.reliability.fuzz smtp -runs=2000 -artifact_prefix=DIR/ [SEED_DIR]

A crash, an escaping exception or a broken promise (AssertionError) stops the run with a
non-zero status and writes the input that caused it under the artifact prefix.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["portcullis", "aiosmtpd", "email"]):
    import portcullis.antivirus.archives
    import portcullis.antivirus.filetypes
    import portcullis.archive
    import portcullis.checks.structure
    import portcullis.mime
    import portcullis.smtp.handler
    import portcullis.smtp.hygiene
    import portcullis.smtp.server  # noqa: F401 - imported to be instrumented

from tests.reliability.fuzz_targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz.py {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
