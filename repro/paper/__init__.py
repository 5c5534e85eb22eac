"""The paper as data: Table 1/2's configurations, budgets, the open choices' readings, expected numbers.

Everything the paper states or leaves open, written once: rows as frozen dataclasses (configs), their
parameter groups, datasets, compute budgets, readings of the open choices, and expected_results.json's
language. May import: nothing from repro (the lowest layer); only the standard library.
"""
