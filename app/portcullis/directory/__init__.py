"""What the gateway knows about the mail it protects, kept in the store and edited at runtime.

Protected domains (with internal mail host and validation switches), valid addresses,
relays, the global black and white lists, and the policy settings.  The CLI and the web UI
both change them through these functions only; the gateway reads them through ``Snapshot``.
"""
