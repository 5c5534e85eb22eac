"""Running the experiments: data, training with checkpoints and resume, evaluation, run folders.

The pipeline trains rows in dependency order and writes result.json with provenance; seeds, timing
estimates and progress bars live here too.
May import: repro.mechanics, repro.paper.
"""
