"""Judging results: the error model, claims, the report, the readings comparison, the history of nights.

Reads result records and expected_results.json; trains nothing.
May import: repro.runs, repro.mechanics, repro.paper.
"""
