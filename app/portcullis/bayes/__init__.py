"""The Bayes content classifier: tokenizer, Robinson/Fisher classifier, token store,
training (CLI, spam@/ham@ mailboxes, auto-learning) and the detection-quality evaluation.
"""
