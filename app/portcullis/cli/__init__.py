"""The ``portcullis`` command: one module per command group, all calling the same
functions as the web UI."""
