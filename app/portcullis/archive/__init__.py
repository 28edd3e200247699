"""The archive: every message the gateway judged, kept for release and for explanation.

Bodies are compressed files under ``<state>/archive/YYYY/MM/DD/``; the index (who, when,
verdict, score, symbols) lives in the store.  Retention is an administrator setting.
"""

from portcullis.archive.archive import Archive, ArchivedMessage, ArchiveError, new_message_id

__all__ = ["Archive", "ArchiveError", "ArchivedMessage", "new_message_id"]
