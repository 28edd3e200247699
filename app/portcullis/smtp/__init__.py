"""The SMTP front: listeners, the stage handler, recipient routing and next-hop delivery.

The handler (handler.py) only orchestrates; routing and validation live in recipients.py,
content checks in portcullis.checks, the decision in portcullis.policy, delivery to the
internal host in nexthop.py.
"""
