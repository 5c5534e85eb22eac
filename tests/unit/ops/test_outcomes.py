"""The report job names the rows of its submit that have no result, and why (repro/ops/outcomes.py).

Job results are written the way submitit writes them at a job's end (LOGS/ID/ID_0_result.pkl); a
real NORMAL failing under Slurm is tested in tests/slurm.
"""

from pathlib import Path

from submitit.core.utils import JobPaths, cloudpickle_dump

from repro.ops.jobs import ReportJob
from tests.conftest import make_micro_budget

TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: NORMAL failed on purpose\n'


def ended(logs: Path, job_id: str, status: str, value) -> None:
    path = JobPaths(logs / "%j", job_id=job_id, task_id=0).result_pickle
    path.parent.mkdir(parents=True, exist_ok=True)
    cloudpickle_dump((status, value), path)


def test_report_says_which_rows_have_no_result_and_why(tmp_path):
    logs = tmp_path / "submitit"
    ended(logs, "11", "error", TRACEBACK)  # NORMAL raised
    ended(logs, "13", "success", {"row": "adv"})
    # bn_params (12) never ran: Slurm cancelled it when NORMAL failed; bn_stats_reset (14) left no result
    jobs = (("normal/seed0", "11", ()), ("bn_params/seed0", "12", ("normal/seed0",)), ("adv/seed0", "13", ()),
            ("bn_only_params/seed0", "14", ()))
    report = ReportJob(make_micro_budget(), (0,), tmp_path / "out", device="cpu").given(jobs, logs)
    text = Path(report()[0]["report"]).read_text()
    section = text[text.index("## Rows without a result"):]
    assert "`normal/seed0`: failed: RuntimeError: NORMAL failed on purpose" in section, section
    assert "`bn_params/seed0`: not run: normal/seed0 did not succeed" in section, section
    assert "`bn_only_params/seed0`: no result" in section and "14_0_log.err" in section, section
    assert "adv/seed0" not in section, f"a row that succeeded is not listed: {section}"
