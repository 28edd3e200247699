"""ClamAV for the gateway: the clamd client, the attachment inventory, status and updates.

The checks that use it live in ``portcullis.checks.virus`` and ``portcullis.checks.attachments``;
the web UI and ``portcullis clamav`` call ``status`` and ``update_now`` from here.
"""

from portcullis.antivirus.clamd import ClamdClient, ClamdError, ClamdUnavailable, ScanResult
from portcullis.antivirus.status import (
    ClamavStatus,
    DatabaseFile,
    UpdateFailed,
    UpdateOutcome,
    clamav_status,
    request_update,
    status,
    update_now,
)

__all__ = ["ClamavStatus", "ClamdClient", "ClamdError", "ClamdUnavailable", "DatabaseFile",
           "ScanResult", "UpdateFailed", "UpdateOutcome", "clamav_status", "request_update",
           "status", "update_now"]
