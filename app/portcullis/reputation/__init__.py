"""The reputation engine: peer relationships, one-way relationships and MTA reputation.

The web UI and ``portcullis report`` call the same functions: ``top_spammers(store)`` and
``top_legitimate(store)`` (lists of ``Standing``, top 50 each).
"""

from portcullis.reputation.mta import Standing, standing, top_legitimate, top_spammers

__all__ = ["Standing", "standing", "top_legitimate", "top_spammers"]
