"""The Bayes content classifier: tokenizer, Robinson/Fisher classifier, token store,
training (CLI, spam@/ham@ mailboxes, auto-learning) and the detection-quality evaluation.

``mailboxes`` is imported by ``portcullis.smtp.virtual`` (its registry), not from here.
"""
