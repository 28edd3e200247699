"""The traffic counters' figures for the whole appliance (``stats.APPLIANCE``), kept in
core's ``traffic`` table beside the domains' rows."""

STEPS = [
    # Until now the appliance's figures were the sum of the domains' rows (a message to
    # three protected domains counted three times): that sum is all there is to go by
    # for the hours counted so.
    """
    INSERT INTO traffic (bucket, domain, verdict, count)
    SELECT bucket, '*', verdict, SUM(count) FROM traffic GROUP BY bucket, verdict
    """,
]
