"""Attention masks as predicates (``masks``) and attention computed under them (``attend``)."""
