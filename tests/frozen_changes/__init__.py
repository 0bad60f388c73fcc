"""`score_changes` as it was before it was rewritten to hold less memory (commit ad9af16), frozen.

`test_score_changes_equivalence.py` checks that today's gives the same rows, in the same order
and with the same types, on random batches. Do not edit it to make a test pass: it is the
reference.
"""
