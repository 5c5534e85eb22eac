"""`repro selfcheck`: its pass rule, its GPU projection, applying it to a budget, and the command's JSON."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from repro.cli.main import main
from repro.mechanics.acceleration import COMPILE_BACKEND, apply_selfcheck, approved_mode
from repro.ops import modes as modes_module
from repro.ops.modes import CPU_MODES, CPU_SIZES, Mode, refusal
from repro.ops.projection import makespan
from repro.ops.throughput import WORKLOADS, workload_rates
from repro.paper.budgets import CIFAR_CPU, PAPER
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL
from repro.verdicts.error_model import binomial_noise_threshold, within_binomial_noise


@given(p=st.floats(0.05, 0.95), n=st.integers(100, 10_000))
def test_rule_passes_a_difference_within_binomial_noise(p, n):
    d = 0.9 * 2 * math.sqrt(2 * p * (1 - p) / n)  # 90% of two SDs of the difference of two binomial errors
    assert within_binomial_noise(p - d / 2, p + d / 2, n), f"p={p}, n={n}: a difference of {d:.4f} was refused"


@given(p=st.floats(0.05, 0.95), n=st.integers(100, 10_000))
def test_rule_fails_a_difference_outside_binomial_noise(p, n):
    d = max(1.1 * 2 * math.sqrt(2 * p * (1 - p) / n), 1.1 / n)
    assert not within_binomial_noise(p - d / 2, p + d / 2, n), f"p={p}, n={n}: a difference of {d:.4f} passed"


def test_rule_allows_one_image_at_the_extremes():
    assert binomial_noise_threshold(0.0, 1000) == pytest.approx(1 / 1000), "at p = 0 one flipped image must pass"


def test_fine_tuning_rows_start_after_normal():
    rows = {NORMAL.id: 10.0, "adv": 3.0, "ft_a": 2.0, "ft_b": 1.0}
    span = makespan(rows, {"ft_a", "ft_b"}, slots=8)
    assert span == pytest.approx(12.0), f"with GPUs to spare the run ends when NORMAL + its longest fine-tuning ends, got {span}"


def test_one_slot_runs_the_rows_in_sequence():
    rows = {c.id: float(i + 1) for i, c in enumerate(CONFIGURATIONS.values())}
    waiting = {c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL}
    assert makespan(rows, waiting, slots=1) == pytest.approx(sum(rows.values())), "one GPU must run every row, back to back"


def selfcheck_record(bf16: bool, compile_: bool, backend: str = COMPILE_BACKEND, device: str = "cuda") -> dict:
    return {"device": device, "passes": {"bf16": bf16, "compile": compile_}, "compile_backend": backend,
            "sizes": {"width": 64}, "environment": {"device_name": "a GPU"}}


@pytest.mark.parametrize("bf16, compile_", [(False, False), (True, False), (False, True), (True, True)])
def test_paper_budget_switches_on_only_what_passed(bf16, compile_):
    budget, applied = apply_selfcheck(PAPER, selfcheck_record(bf16, compile_), "cuda")
    assert (budget.bf16, budget.compile) == (bf16, compile_), f"selfcheck passes {bf16, compile_} gave {budget.bf16, budget.compile}"
    assert applied["bf16"] == bf16 and applied["compile"] == compile_, "provenance must record what was applied"


def test_compile_pass_with_another_backend_is_not_applied():
    budget, _ = apply_selfcheck(PAPER, selfcheck_record(True, True, backend="eager"), "cuda")
    assert not budget.compile, "an eager-backend pass says nothing about inductor's generated code"


def test_selfcheck_from_another_device_type_is_refused(tmp_path, capsys):
    path = tmp_path / "selfcheck.json"
    path.write_text(json.dumps(selfcheck_record(True, True, device="cuda")))
    code = main(["bench", "--device", "cpu", "--selfcheck", str(path), "--repeats", "1"])
    assert code == 2 and "repro selfcheck --device cpu" in capsys.readouterr().err, "a CUDA selfcheck must not switch on a CPU's bf16"


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)


@pytest.fixture(scope="module")
def cpu_selfcheck(tmp_path_factory):
    """The whole command at its CPU size, single-threaded (fast and steady on a shared machine)."""
    path = tmp_path_factory.mktemp("selfcheck") / "selfcheck.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["selfcheck", "--device", "cpu", "--json", str(path)]) == 0, "repro selfcheck failed"
    finally:
        torch.set_num_threads(threads)
    return json.loads(path.read_text())


@pytest.mark.slow  # ~12 s of CPU time, most of it torch.compile tracing the network (about 1 s per graph)
def test_selfcheck_json_has_every_field(cpu_selfcheck):
    record = cpu_selfcheck
    env = record["environment"]
    for key in ("device_name", "driver", "cuda", "cudnn", "tf32", "cpu_count", "torch_threads"):
        assert key in env, f"environment lacks {key}"
    assert _positive(env["memory_gib"]), f"device memory {env['memory_gib']}"
    assert {"torch", "torchvision", "pyautoattack"} <= env["versions"].keys(), "library versions missing"
    modes = list(record["modes"])
    assert set(modes) == {m.name for m in CPU_MODES}, f"a CPU selfcheck compares {modes}"
    for workload in WORKLOADS:
        for mode in modes:
            cell = record["throughput"][workload][mode]
            assert _positive(cell.get("images_per_second")) or isinstance(cell.get("skipped"), str), f"{workload}/{mode}: {cell}"
    both = record["throughput"]["two_rows_concurrently"]
    assert _positive(both["two_rows_images_per_second"]) and _positive(both["speedup"]), f"concurrent rows: {both}"
    strength = record["attack_strength"]
    for mode in modes:
        if "skipped" in strength[mode]:
            continue
        for error in ("clean_error", "pgd_error", "apgd_ce_error"):
            assert 0 <= strength[mode][error] <= 100, f"{mode} {error} = {strength[mode].get(error)}"
    assert all(isinstance(record["passes"][m], bool) for m in modes), f"pass flags {record['passes']}"
    assert record["approved"] in modes and record["passes"][record["approved"]], f"approved {record['approved']}"
    assert isinstance(record["determinism"]["identical"], bool) and record["determinism"]["max_abs_difference"] >= 0
    projection = record["projection"]
    assert all(_positive(s) for s in projection["row_seconds"].values()), "every row needs a projected time"
    assert set(projection["row_seconds"]) == set(CONFIGURATIONS), "the projection must cover every Table 2 row"
    hours = [projection["gpus_seconds"][k] for k in ("1", "4", "8")]
    assert all(map(_positive, hours)) and hours[0] > hours[1] >= hours[2], f"1/4/8 GPUs: {hours} must decrease"
    assert record["compile_backend"] == "eager" and record["compile_backend_reason"], "the CPU's backend and why"


# --- the approved mode (issue 28): the fastest that passed, on every device --------------------------

def modes_record(rates: dict, passes: dict, backend: str = COMPILE_BACKEND, device: str = "cpu") -> dict:
    """A selfcheck record of the CPU modes with these PGD-step rates and pass flags."""
    return {"device": device, "modes": {m.name: m.switches() for m in CPU_MODES}, "compile_backend": backend,
            "throughput": {"pgd10_step": {m: {"images_per_second": r} for m, r in rates.items()}},
            "passes": {"fp32": True, **passes}, "sizes": {"width": 16}, "environment": {"device_name": "a CPU"}}


CPU_RATES = {"fp32": 97.0, "channels_last": 118.0, "bf16": 164.0, "bf16+channels_last": 218.0, "compiled": 130.0}


def test_the_fastest_mode_that_passed_is_approved():
    record = modes_record(CPU_RATES, {"channels_last": True, "bf16": True, "bf16+channels_last": True,
                                      "compiled": True})
    assert approved_mode(record) == "bf16+channels_last", approved_mode(record)


def test_a_faster_mode_that_failed_is_not_approved():
    record = modes_record(CPU_RATES, {"channels_last": True, "bf16": True, "bf16+channels_last": False,
                                      "compiled": False})
    assert approved_mode(record) == "bf16", "bf16 + channels_last failed its check: the next fastest that passed"


def test_compiled_mode_checked_with_another_backend_is_not_approved():
    record = modes_record({"fp32": 97.0, "compiled": 500.0}, {"compiled": True}, backend="eager")
    assert approved_mode(record) == "fp32", "an eager-backend pass says nothing about inductor's generated code"


def test_approved_mode_is_switched_on_and_recorded():
    record = modes_record(CPU_RATES, {"channels_last": True, "bf16": True, "bf16+channels_last": True,
                                      "compiled": False})
    budget, applied = apply_selfcheck(CIFAR_CPU, record, "cpu")
    assert (budget.bf16, budget.channels_last, budget.compile) == (True, True, False), budget
    assert applied["mode"] == "bf16+channels_last", f"provenance must name the mode applied: {applied}"


def test_without_native_bf16_the_cpu_selfcheck_says_so_and_measures_no_bf16(monkeypatch):
    monkeypatch.setattr(modes_module, "cpu_bf16_flags", lambda: [])
    bf16 = Mode("bf16", False, bf16=True)
    assert "bf16" in (refusal(bf16, "cpu") or ""), "a CPU without native bf16 must say why bf16 is not measured"
    assert refusal(Mode("channels_last", True), "cpu") is None, "channels_last needs no bf16 instructions"
    throughput = workload_rates(CPU_SIZES, (bf16,), torch.device("cpu"), "eager")
    assert all("bf16" in throughput[w]["bf16"].get("skipped", "") for w in WORKLOADS), \
        f"bf16 must not be measured there, and say why: {throughput}"
    record = modes_record({"fp32": 97.0, "channels_last": 118.0}, {"channels_last": True, "bf16": False,
                                                                   "bf16+channels_last": False, "compiled": False})
    assert approved_mode(record) == "channels_last", "without bf16 the faster of fp32 and channels_last"


def test_selfcheck_auto_applies_this_devices_selfcheck_of_the_budget(tmp_path):
    from repro.cli.main import build_parser
    from repro.cli.options import settings_from

    record = modes_record(CPU_RATES, {"channels_last": True, "bf16": True, "bf16+channels_last": True,
                                      "compiled": False})
    (tmp_path / "selfcheck-cpu-smoke.json").write_text(json.dumps(record))
    args = build_parser().parse_args(["train", "normal", "--device", "cpu", "--out", str(tmp_path), "--selfcheck", "auto"])
    settings = settings_from(args)
    assert (settings.budget.bf16, settings.budget.channels_last) == (True, True), settings.budget
    assert settings.selfcheck["mode"] == "bf16+channels_last", settings.selfcheck


class _FullDisk:
    """A file whose write stores half its data and then fails, as on a full disk."""

    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        raise OSError(28, "No space left on device")


def test_an_interrupted_write_leaves_the_previous_selfcheck_json_whole(tmp_path, monkeypatch):
    import io

    from repro.ops.selfcheck import write

    path = tmp_path / "selfcheck.json"
    before = json.dumps(modes_record(CPU_RATES, {"bf16": True}))
    path.write_text(before)
    real_open = io.open
    monkeypatch.setattr(io, "open", lambda *args, **kwargs: _FullDisk(real_open(*args, **kwargs)))
    with pytest.raises(OSError):
        write(modes_record(CPU_RATES, {"bf16": False}), path)
    monkeypatch.undo()
    assert path.read_text() == before, (
        "a write that fails midway must leave the previous selfcheck.json as it was, not truncated: "
        f"{path.read_text()[:80]!r}")
