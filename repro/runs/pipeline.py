"""Orchestration: data once, configurations in dependency order, results with provenance.

Run folders are `OUT/BUDGET/seedSEED/CONFIG_ID/` holding `checkpoint.pt` and `result.json`
(BUDGET is the budget's name, with a hash appended when overrides change its training, and
"+CHOICE=READING" per non-default reading of an open choice that changes training, repro/paper/variants.py).
Fine-tuning rows (Table 1 "Fine-tune") start from NORMAL of the same budget and seed, which is
trained once and reused; a per-folder lock makes concurrent runs wait for each other instead of
training the same row twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from repro.paper.budgets import ACCELERATION_FIELDS, BUDGETS, Budget, as_run
from repro.runs.checkpoint import (CheckpointError, atomic_write_bytes, atomic_write_json, run_lock, state_digest,
                                   state_fingerprint)
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, LAST_EPOCH, NORMAL, Configuration
from repro.paper.datasets import CIFAR10, CIFAR10_SIZES
from repro.runs.data import DataError, Dataset, load_cifar10, synthetic_dataset
from repro.runs.evaluate import evaluate
from repro.mechanics.model import ResNet20
from repro.runs.provenance import device_description, git_commit, hardware, library_versions
from repro.runs.curves import curve_record
from repro.runs.run_state import (CHECKPOINT_NAME, checkpoint_selection, is_complete, load_snapshot,
                                  load_trained_model, training_curve)
from repro.runs.training import train
from repro.paper.variants import apply_variants, config_changes, folder_suffix, training_variants

RESULT_NAME = "result.json"
SYNTHETIC_DATA_SEED = 0  # the built-in data is the same task for every training seed, like CIFAR-10


@dataclass
class RunSettings:
    """Everything a command-line invocation decides besides the configurations."""

    budget: Budget
    seed: int = 0
    out: Path = Path("runs")
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    data_dir: Path | None = None
    download: bool = False
    allow_unverified_data: bool = False
    resume: bool = False
    restart: bool = False
    variants: dict[str, str] = field(default_factory=dict)  # non-default readings {choice: reading}
    selfcheck: dict | None = None  # what a passing selfcheck switched on (acceleration.apply_selfcheck)
    # Fine-tuning rows start from the NORMAL trained without the acceleration modes (OUT/BUDGET/seedS/normal),
    # so rows fine-tuned in a mode pair with fp32 rows from the same starting weights (verdicts/mode_rule.py).
    paired_normal: bool = False


def load_data(settings: RunSettings) -> Dataset:
    """The budget's dataset, trimmed to its training subset, on the run's device."""
    budget = settings.budget
    if budget.dataset == CIFAR10:
        if settings.data_dir is None:
            raise DataError("the budget uses CIFAR-10: pass --data-dir DIR (and --download to fetch it there)")
        data = load_cifar10(settings.data_dir, download=settings.download,
                            allow_unverified=settings.allow_unverified_data)
    else:
        data = synthetic_dataset(budget.train_images, budget.n_test or CIFAR10_SIZES[1], seed=SYNTHETIC_DATA_SEED)
    if budget.n_train is not None:
        data.train_images, data.train_labels = data.train_images[:budget.n_train], data.train_labels[:budget.n_train]
    return data.to(settings.device)


def dependency_order(config_ids: list[str]) -> list[Configuration]:
    """The configurations asked for, NORMAL first when a fine-tuning row needs it; Table 2 order."""
    wanted = set(config_ids)
    if any(CONFIGURATIONS[c].init == FROM_NORMAL for c in wanted):
        wanted.add(NORMAL.id)
    return [c for c in CONFIGURATIONS.values() if c.id in wanted]


class Pipeline:
    """Trains and evaluates configurations under one RunSettings, reusing finished work."""

    def __init__(self, settings: RunSettings, reporter=None):
        self.settings = settings
        self.reporter = reporter  # optional: .training(config, total_steps) -> context with on_step/progress
        self._data: Dataset | None = None
        self._restarted: set[str] = set()
        self.trained_here: list[str] = []  # configurations this process trained (not loaded)
        self.evaluated_here: list[str] = []  # configurations this process evaluated (not reused)
        self._hashes: dict[str, str] | None = None
        self._unaccelerated: Pipeline | None = None  # this run without acceleration modes (paired_normal)

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_data(self.settings)
        return self._data

    @property
    def budget_folder(self) -> Path:
        """OUT/BUDGET: the seeds' run folders, and the report over seeds (repro.verdicts.report.write_seed_report).

        BUDGET is the budget's run name plus a suffix naming non-default readings (repro.paper.variants).
        """
        s = self.settings
        return Path(s.out) / (s.budget.run_name + folder_suffix(s.variants))

    @property
    def run_folder(self) -> Path:
        """OUT/BUDGET/seedSEED: the folder holding every configuration's run (BUDGET names the readings)."""
        return self.budget_folder / f"seed{self.settings.seed}"

    def configuration(self, config: Configuration) -> Configuration:
        """`config` as it trains under this run's readings (the registry row under the defaults)."""
        return apply_variants(config, self.settings.variants)

    def folder(self, config: Configuration) -> Path:
        return self.run_folder / config.id

    def trained_model(self, config: Configuration, restart: bool = False) -> tuple[ResNet20, float]:
        """The trained model of `config` (on the device) and its training seconds; trains if needed."""
        s = self.settings
        config = self.configuration(config)
        folder = self.folder(config)
        with run_lock(folder):
            if restart and config.id not in self._restarted:
                for name in (CHECKPOINT_NAME, RESULT_NAME):
                    (folder / name).unlink(missing_ok=True)
                self._restarted.add(config.id)
            initial = fingerprint = None
            if config.init == FROM_NORMAL:
                initial, _ = self.starting_normal()
                fingerprint = state_fingerprint(initial.state_dict())
            self._adopt_default_run(config, folder, fingerprint)
            if not is_complete(folder, config, s.budget, s.seed, initial_fingerprint=fingerprint):
                steps = (len(self.data.train_labels) // s.budget.batch_size) * s.budget.epochs_of(config)
                hooks = self.reporter.training(config, steps) if self.reporter else _NoHooks()
                self.trained_here.append(config.id)
                with hooks:
                    train(config, s.budget, self.data, folder, seed=s.seed, device=s.device,
                          initial_model=initial, resume=s.resume,
                          on_step=hooks.on_step, progress=hooks.progress)
            model, seconds = load_trained_model(folder, config, s.budget, s.seed)
        return model.to(s.device), seconds

    def _fp32(self) -> "Pipeline":
        """This run without its acceleration modes (and selfcheck): where a paired run's NORMAL lives."""
        if self._unaccelerated is None:
            s = self.settings
            registered = BUDGETS.get(s.budget.name)
            defaults = {f.name: f.default for f in fields(Budget) if f.name in ACCELERATION_FIELDS}
            plain = replace(s.budget, **{k: getattr(registered, k) if registered else defaults[k] for k in s.budget.modes})
            self._unaccelerated = Pipeline(replace(s, budget=plain, selfcheck=None, paired_normal=False), self.reporter)
            self._unaccelerated._data = self.data  # one copy of the data in memory
        return self._unaccelerated

    def starting_normal(self) -> tuple[ResNet20, float]:
        """The NORMAL a fine-tuning row starts from: this run's, or under paired_normal the one trained
        without acceleration modes (trained there first if missing)."""
        if self.settings.paired_normal and self.settings.budget.modes:
            model, seconds = self._fp32().trained_model(NORMAL)
            return model.to(self.settings.device), seconds
        return self.trained_model(NORMAL)

    def _adopt_default_run(self, config: Configuration, folder: Path, fingerprint: str | None) -> None:
        """Copy a finished checkpoint of this row trained under the same inputs in another folder.

        NORMAL takes hours at the paper budget; a reading that does not change it (say of BN ONLY
        PARAMS), or an override of a field it does not read (the fine-tuning rate), must not retrain
        it. Looked for in this budget's default-readings folder, then the registered budget's. Copied
        only when the checkpoint passes the checks one trained here must pass: its identity (the
        training fields the row reads, seed, and the configuration's changes: none for the default
        run, so a row the readings change never matches) and the starting NORMAL's weights.
        """
        s = self.settings
        target = folder / CHECKPOINT_NAME
        names = dict.fromkeys([s.budget.run_name] + ([s.budget.name] if s.budget.name in BUDGETS else []))
        for name in names:
            default = Path(s.out) / name / f"seed{s.seed}" / config.id / CHECKPOINT_NAME
            if target.exists() or default == target or not default.exists():
                continue
            try:
                if not is_complete(default.parent, config, s.budget, s.seed, initial_fingerprint=fingerprint):
                    continue
            except CheckpointError:
                continue  # another NORMAL, other inputs: train here instead
            atomic_write_bytes(target, default.read_bytes())
            return

    def result(self, config: Configuration, reuse: bool = True) -> dict:
        """Train (if needed) and evaluate `config`; writes and returns its result record.

        Holds the row's result lock throughout, so a second process asking for the same row (another
        pytest-xdist worker) waits and reuses this record instead of evaluating it again.
        """
        config = self.configuration(config)
        if config.id == NORMAL.id and self.settings.paired_normal and self.settings.budget.modes:
            record = self._fp32().result(config, reuse)  # the NORMAL the rows started from, beside them
            atomic_write_json(self.folder(config) / RESULT_NAME, record)
            return record
        with run_lock(self.folder(config), name=".result.lock"):
            return self._result(config, reuse)

    def _result(self, config: Configuration, reuse: bool) -> dict:
        s = self.settings
        path = self.folder(config) / RESULT_NAME
        model, train_seconds = self.trained_model(config, restart=s.restart)
        identity = self._identity(config, model)
        if reuse and path.exists():
            record = json.loads(path.read_text())
            # A record written before per-row series existed is evaluated again (the weights are
            # reused), so the claims that compare rows' arrays get their inputs.
            if record.get("identity") == identity and "series" in record:
                return record
        started = time.perf_counter()
        metrics, series, timings = evaluate(model, self.data, s.budget, seed=s.seed)
        self.evaluated_here.append(config.id)
        record = {
            "identity": identity,
            "config": asdict(config),
            "metrics": metrics,
            "series": series,  # per-row arrays (BN layers, confidences, logits) for the cross-row claims
            "budget": as_run(s.budget, config),  # the values this row ran with; readings' changes named
            "seed": s.seed,
            "variants": training_variants(s.variants),  # the open choices' non-default readings
            "provenance": {
                "git_commit": git_commit(),
                "versions": library_versions(),
                "device": device_description(s.device),
                "hardware": hardware(s.device),  # CPU model and capability, threads; GPU, driver, CUDA, cuDNN
                "data": self.data.provenance(),
                "data_sha256": self._data_hashes(),  # the arrays as loaded, whatever their checksum status
                "weights_sha256": state_digest(model.state_dict()),  # the weights evaluated
                **self._initial_weights(config),
                # what a passing selfcheck switched on (--selfcheck); absent when none was applied
                **({"selfcheck": s.selfcheck} if s.selfcheck is not None else {}),
            },
            "wall_seconds": {"train": train_seconds, **{f"eval_{k}": v for k, v in timings.items()},
                             "eval_total": time.perf_counter() - started},
        }
        if s.budget.ladder_epochs:  # the weights of earlier epochs, evaluated as the end's (the fine-tuning ladder)
            record["ladder"] = self._ladder(config, metrics)
        points = training_curve(self.folder(config))
        if points:  # where training was heading (repro/runs/curves.py); none in runs that predate curves
            record["curve"] = curve_record(points, s.budget, min(s.budget.curve_images, len(self.data.test_labels)))
        if config.checkpoint_selection != LAST_EPOCH:  # which epoch's weights these metrics are (adv_checkpoint)
            record["checkpoint_selection"] = checkpoint_selection(self.folder(config))
        atomic_write_json(path, record)
        return record

    def _ladder(self, config: Configuration, final: dict) -> list[dict]:
        """The full evaluation of the weights kept after each of the budget's ladder_epochs, then the
        end's metrics; an epoch the run kept no weights for says why instead."""
        s = self.settings
        epochs = s.budget.epochs_of(config)
        ladder = []
        for epoch in sorted(k for k in set(s.budget.ladder_epochs) if k < epochs):
            model = load_snapshot(self.folder(config), config, s.budget, s.seed, epoch)
            if model is None:
                ladder.append({"epoch": epoch, "missing": "no weights kept at this epoch: the run was trained "
                               "without it in --set ladder_epochs (retrain with --restart to keep them)"})
                continue
            started = time.perf_counter()
            metrics, _, _ = evaluate(model.to(s.device), self.data, s.budget, seed=s.seed)
            ladder.append({"epoch": epoch, "metrics": metrics, "seconds": time.perf_counter() - started})
        return ladder + [{"epoch": epochs, "metrics": final}]

    def _data_hashes(self) -> dict[str, str]:
        if self._hashes is None:
            self._hashes = self.data.hashes()
        return self._hashes

    def _initial_weights(self, config: Configuration) -> dict[str, str]:
        """{"initial_weights_sha256": the starting NORMAL's weights} for a fine-tuning row, else {}."""
        if config.init != FROM_NORMAL:
            return {}
        initial, _ = self.starting_normal()
        return {"initial_weights_sha256": state_digest(initial.state_dict())}

    def _identity(self, config: Configuration, model: ResNet20) -> dict:
        """What a result record must match to be reused: the very weights, evaluated the same way."""
        s = self.settings
        identity = {"config_id": config.id, "budget": s.budget.identity(), "seed": s.seed,
                    "data": self.data.provenance(), "model": state_fingerprint(model.state_dict())}
        if config_changes(config):  # only then: records of the registry's rows keep today's identity
            identity["config_changes"] = config_changes(config)
        return identity


class _NoHooks:
    on_step = None
    progress = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
