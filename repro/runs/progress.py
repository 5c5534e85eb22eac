"""Progress of training runs on the terminal (tqdm bars) or, without one, a line per epoch in the log.

The pipeline takes any reporter with `.training(config, total_steps)`; this is the one the command
line and the cluster jobs (repro/ops/submit.py, whose logs have no terminal) use.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class TqdmReporter:
    """Progress bars: one per training run, showing epoch, loss and accuracy."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def training(self, config, total_steps):
        return _TrainingBar(config, total_steps, self.enabled)


class _TrainingBar:
    def __init__(self, config, total_steps, enabled):
        self.config = config
        self.log_epochs = enabled and not sys.stderr.isatty()  # no bar in a log file: a line per epoch
        self.bar = tqdm(total=total_steps, desc=f"train {config.id}", unit="step", disable=None if enabled else True,  # None: bars only on a terminal
                        dynamic_ncols=True, leave=True)

    def on_step(self, step):
        self.bar.n = step + 1
        self.bar.refresh() if self.bar.n % 10 == 0 else None

    def progress(self, info):
        if self.log_epochs:
            print(f"train {self.config.id}: epoch {info['epoch']}/{info['epochs']} loss {info['loss']:.3f} "
                  f"acc {info['accuracy']:.3f} ({info['seconds']:.0f} s)", file=sys.stderr, flush=True)
        self.bar.set_postfix(epoch=f"{info['epoch']}/{info['epochs']}", loss=f"{info['loss']:.3f}",
                             acc=f"{info['accuracy']:.3f}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
        return False
