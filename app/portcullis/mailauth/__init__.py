"""Sender authentication: SPF (RFC 7208), DKIM (RFC 6376, verified with dkimpy) and DMARC
(RFC 7489), every DNS lookup through the gateway's one resolver (``resolver.py``)."""
