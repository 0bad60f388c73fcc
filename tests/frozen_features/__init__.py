"""The feature builders as they were before issue 16's rewrite (commit e2b6f3a), frozen.

`test_feature_equivalence.py` checks that today's builders give the same values, bit for bit,
on random data. Only the builders that changed are frozen here; the others are imported from
the package. Do not edit these files to make a test pass: they are the reference.
"""
