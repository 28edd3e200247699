"""Signed push updates: the bundle format and its verification (shared with the vendor's
``portcullis_vendor``), and the appliance's update agent.

The web UI's entry point is ``update_history(store)``: every update attempt with its
outcome, newest first.  See agent.py for the commands and targets.py for what a bundle can
update.
"""

from portcullis.update.history import UpdateAttempt, update_history

__all__ = ["UpdateAttempt", "update_history"]
