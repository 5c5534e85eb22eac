"""The mechanisms the claims rest on: ResNet-20, freezing (Table 1), Equation 1, PGD, one training step.

Also the speed-ups (channels_last, bf16, compile) that must leave these mechanisms' numbers unchanged.
Pure functions of models and tensors: no files, no data sets, no runs.
May import: repro.paper.
"""
