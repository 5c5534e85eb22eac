"""Pictures: the numbers behind Figures 1-3 (unit-tested) and their plots, and the history plot.

matplotlib is imported only by the modules that draw.
May import: repro.verdicts, repro.runs, repro.mechanics, repro.paper.
"""
