"""Operations: cluster submission (repro submit), the device selfcheck, the GPU-time projection.

What a researcher runs before or around a nightly, built on the layers below.
May import: repro.figures, repro.verdicts, repro.runs, repro.mechanics, repro.paper.
"""
