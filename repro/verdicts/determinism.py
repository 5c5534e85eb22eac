"""Two runs of one row and seed compared: same inputs, same weights, and when not, what the records say why.

On a CPU this code trains bit for bit the same weights from the same inputs (measured twice at once,
under load: tests/repro/test_determinism.py; results/cifar_cpu/determinism). So when two runs of one row and seed share the commit that produced them, the
data they read (SHA-256 of the arrays as loaded), the hardware (runs.provenance.hardware_key: CPU model,
kernel capability, threads; on CUDA the device, CUDA and cuDNN), the library versions (torch,
torchvision, ...: where both runs recorded them), the readings, the budget's overrides and its
acceleration modes, different weights are non-determinism: a defect. Different hardware, data,
libraries, code or settings explain different weights: said, not flagged. So does CUDA, whose kernels this code
does not force to be deterministic. Records written before these hashes existed cannot be compared.

A record's hardware is the machine its process ran on; a run that reused a checkpoint trained elsewhere
names the machine that evaluated it.
"""

from __future__ import annotations

from repro.paper.budgets import modes_of, overrides_of
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL
from repro.runs.provenance import hardware_key

SAME, DEFECT, EXPLAINED, UNKNOWN = "same weights", "non-deterministic", "different inputs", "cannot be compared"
HASHED = ("weights_sha256", "data_sha256", "hardware")  # what a record must carry to be compared


def short(commit: str) -> str:
    """A commit as people read it: 12 hex digits, keeping the +dirty mark."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def run_inputs(record: dict) -> dict:
    """What decides a result record's weights, as recorded: commit, data and weight hashes, hardware,
    library versions ({} where not recorded), readings, the budget as run (name and overrides) and its
    acceleration modes."""
    provenance, budget = record.get("provenance", {}), record.get("budget", {})
    hardware = provenance.get("hardware")
    return {
        "commit": provenance.get("git_commit", "unknown"),
        "data_sha256": provenance.get("data_sha256"),
        "hardware": hardware_key(hardware),
        "versions": dict(provenance.get("versions") or {}),
        "cuda": bool(hardware and hardware.get("device_name")),
        "readings": dict(record.get("variants") or {}),
        "budget": {"name": budget.get("name"), **overrides_of(budget)} if budget else None,
        "modes": modes_of(budget) if budget else [],
        "weights_sha256": provenance.get("weights_sha256"),
        "initial_weights_sha256": provenance.get("initial_weights_sha256"),
    }


def _differences(a: dict, b: dict) -> list[str]:
    """What differs between two runs' inputs (run_inputs), in words."""
    out = []
    if a["commit"] != b["commit"]:
        out.append(f"code: commit {short(a['commit'])} vs {short(b['commit'])}")
    elif a["commit"].endswith("+dirty") or a["commit"] == "unknown":
        out.append(f"code: commit {short(a['commit'])}, uncommitted changes may differ")
    if a["data_sha256"] != b["data_sha256"]:
        out.append("data: other arrays read (data_sha256 differs)")
    if a["hardware"] != b["hardware"]:
        out.append(f"hardware: {a['hardware']} vs {b['hardware']}")
    # Versions count only where both runs recorded them: an entry without them (older records and
    # history lines) says nothing either way.
    va, vb = a.get("versions") or {}, b.get("versions") or {}
    if va and vb and va != vb:
        changed = [f"{name} {va.get(name, 'not recorded')} vs {vb.get(name, 'not recorded')}"
                   for name in sorted(va.keys() | vb.keys()) if va.get(name) != vb.get(name)]
        out.append(f"versions: {', '.join(changed)}")
    for key in ("readings", "budget", "modes"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} vs {b.get(key)}")
    if a.get("initial_weights_sha256") != b.get("initial_weights_sha256"):
        out.append("started from other NORMAL weights")
    return out


CUDA_KERNELS = "on CUDA, whose kernels are not bitwise deterministic"
NOT_LIKE_FOR_LIKE = ("this row did not start from the NORMAL recorded beside it, so comparisons of it with that "
                     "NORMAL are not like for like")


def compare_runs(a: dict, b: dict) -> tuple[str, str]:
    """(SAME | DEFECT | EXPLAINED | UNKNOWN, why) for two runs of one row and seed (run_inputs dicts)."""
    missing = [key for key in HASHED if not a.get(key) or not b.get(key)]
    if missing:
        return UNKNOWN, f"recorded without {', '.join(missing)} (older records): cannot be compared"
    if a["weights_sha256"] == b["weights_sha256"]:
        return SAME, "same weights"
    differences = _differences(a, b)
    if differences:
        return EXPLAINED, "different weights, explained by other inputs: " + "; ".join(differences)
    if a["cuda"]:
        return EXPLAINED, f"different weights from the same inputs {CUDA_KERNELS}"
    return DEFECT, ("same commit, data, hardware, library versions, readings, budget and modes, different weights: "
                    "non-determinism (a defect)")


def _starts(per_seed: dict[int, dict[str, dict]], seeds: list[int]):
    """Per seed and fine-tuning row beside a NORMAL record: (seed, row, kind, why, what differs in words,
    NORMAL's inputs, the inputs of the NORMAL the row started from), compare_runs's kind and why."""
    for seed in seeds:
        records = per_seed.get(seed, {})
        if NORMAL.id not in records:
            continue
        normal = {**run_inputs(records[NORMAL.id]), "initial_weights_sha256": None}
        for config_id, record in records.items():
            if CONFIGURATIONS[config_id].init != FROM_NORMAL:
                continue
            inputs = run_inputs(record)
            started = {**inputs, "weights_sha256": inputs["initial_weights_sha256"], "initial_weights_sha256": None}
            kind, why = compare_runs(normal, started)
            differences = _differences(normal, started) if kind == EXPLAINED else []
            differ = (f"different inputs ({'; '.join(differences)})" if differences
                      else f"same inputs {CUDA_KERNELS}" if kind == EXPLAINED
                      else "same inputs, different weights: non-deterministic")
            yield seed, config_id, kind, why, differ, normal, started


def not_like_for_like(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> dict[str, str]:
    """{"seedS/row": why} for each fine-tuning row of `per_seed` ({seed: {config_id: record}}) that did not
    start from the NORMAL recorded beside it (its initial_weights_sha256 differs from that NORMAL's
    weights): a comparison of that row with that NORMAL is not like for like. Rows whose records cannot
    be compared (no hashes) are not named."""
    return {f"seed{seed}/{config_id}": differ for seed, config_id, kind, _, differ, _, _ in _starts(per_seed, seeds)
            if kind in (DEFECT, EXPLAINED)}


def starting_normal_lines(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> list[str]:
    """Per seed, NORMAL's record against the NORMAL each fine-tuning row of that seed started from
    (its initial_weights_sha256): two runs of one row and seed wherever the weights differ.

    One line per pair that differs (non-determinism flagged, naming both records; else what differs),
    saying the row's comparisons with that NORMAL are not like for like; one line for all pairs that
    cannot be compared; nothing where every row started from the NORMAL recorded beside it.
    """
    lines, unknown = [], []
    for seed, config_id, kind, why, differ, normal, started in _starts(per_seed, seeds):
        names = f"seed{seed}/{NORMAL.id}/result.json", f"seed{seed}/{config_id}/result.json"
        if kind == UNKNOWN:
            unknown.append(seed)
        elif kind != SAME:
            mark, said = ("NON-DETERMINISTIC: ", why) if kind == DEFECT else ("", differ)
            lines.append(f"{mark}{names[1]} started from NORMAL weights {str(started['weights_sha256'])[:12]}, "
                         f"{names[0]} has {str(normal['weights_sha256'])[:12]}: {said}: {NOT_LIKE_FOR_LIKE}")
    if unknown:
        lines.append(f"{len(unknown)} fine-tuning record(s) (seed {', '.join(map(str, sorted(set(unknown))))}) cannot be "
                     "compared with their seed's NORMAL record: recorded without the hardware, data or weight hashes "
                     "(older records)")
    return lines
