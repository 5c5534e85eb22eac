"""`repro selfcheck`: its pass rule, its GPU projection, applying it to a budget, and the command's JSON."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from repro.cli.main import main
from repro.mechanics.acceleration import COMPILE_BACKEND, apply_selfcheck
from repro.ops.attack_check import binomial_noise_threshold, within_binomial_noise
from repro.ops.modes import MODES
from repro.ops.projection import makespan
from repro.ops.throughput import WORKLOADS
from repro.paper.budgets import PAPER
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL


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
    for workload in WORKLOADS:
        for mode in MODES:
            cell = record["throughput"][workload][mode]
            assert _positive(cell.get("images_per_second")) or isinstance(cell.get("skipped"), str), f"{workload}/{mode}: {cell}"
    both = record["throughput"]["two_rows_concurrently"]
    assert _positive(both["two_rows_images_per_second"]) and _positive(both["speedup"]), f"concurrent rows: {both}"
    strength = record["attack_strength"]
    for mode in MODES:
        for attack in ("pgd_error", "apgd_ce_error"):
            assert 0 <= strength[mode][attack] <= 100, f"{mode} {attack} = {strength[mode].get(attack)}"
    assert all(isinstance(record["passes"][k], bool) for k in ("bf16", "compile")), f"pass flags {record['passes']}"
    assert isinstance(record["determinism"]["identical"], bool) and record["determinism"]["max_abs_difference"] >= 0
    projection = record["projection"]
    assert all(_positive(s) for s in projection["row_seconds"].values()), "every row needs a projected time"
    assert set(projection["row_seconds"]) == set(CONFIGURATIONS), "the projection must cover every Table 2 row"
    hours = [projection["gpus_seconds"][k] for k in ("1", "4", "8")]
    assert all(map(_positive, hours)) and hours[0] > hours[1] >= hours[2], f"1/4/8 GPUs: {hours} must decrease"
    assert record["compile_backend"] == "eager" and record["compile_backend_reason"], "the CPU's backend and why"
