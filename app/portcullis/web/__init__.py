"""The web administration (port 80): a bottle application served by waitress.

Every page calls the same functions as the CLI (``portcullis.directory``, ``archive``,
``stats``, ``decisionlog``, ...).  Pages work without JavaScript, all assets are served
locally, charts are SVG rendered on the server, and all text goes through the message
catalogue (``i18n``) so other languages can be added.
"""
