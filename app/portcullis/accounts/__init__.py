"""Administrator accounts of the web UI: users and roles, password hashes, sessions,
login throttling and the first-start setup code.

Two roles: the super administrator sees and changes everything; a domain administrator
sees and changes only the domains assigned to them.  The CLI (``portcullis user``) and the
web UI manage accounts through these modules only.
"""
