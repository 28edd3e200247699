"""Persistent state shared by every Portcullis service.

``Store`` is the one interface (base.py); ``SQLiteStore`` is the embedded implementation.
Each area of the product keeps its tables in its own migration list (migrations/) and its
queries in its own repository module, so a PostgreSQL store only has to provide ``Store``.
"""

from portcullis.store.base import Row, Store, StoreError
from portcullis.store.sqlite import SQLiteStore

__all__ = ["Row", "SQLiteStore", "Store", "StoreError", "check_url", "open_store"]


def check_url(url: str) -> None:
    """The one store there is: SQLite in the state directory ("" or "sqlite:").  Any
    other URL is a StoreError: a sqlite: URL naming a file elsewhere was taken and the
    file it named never used."""
    if url not in ("", "sqlite:"):
        raise StoreError(f"unsupported store url {url!r}: the store is SQLite in the"
                         " state directory (leave url empty)")


def open_store(state_dir: "str | object", url: str = "") -> Store:
    """Open (creating and migrating if needed) the store of a state directory."""
    from pathlib import Path

    check_url(url)
    store = SQLiteStore(Path(str(state_dir)) / "portcullis.db")
    store.migrate()
    return store
