"""The pages of the web UI, one module per menu entry; each has ``register(web)``."""

from portcullis.web.pages import (
    account,
    archive,
    dashboard,
    defenses,
    domains,
    lists,
    logview,
    relays,
    reports,
    server,
    settings,
    users,
)

PAGES = [account, dashboard, domains, relays, lists, archive, logview, reports, settings,
         users, server, defenses]
