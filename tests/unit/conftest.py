"""The fast suite's fake Slurm, for the submit tests (tests/unit/ops, tests/unit/cli): `sbatch`,
`scancel`, `sinfo` and `srun` on PATH that submit nothing.

sbatch numbers the jobs it accepts from 101; told to, it refuses from its Nth call on with a message
of Slurm's own (the real scheduler's answers are tested in tests/slurm). scancel records its arguments.
sinfo describes one node (NODE: more cores than a job asks for by default), or another.
"""

import os
import re
from pathlib import Path

import pytest

SBATCH = """#!/bin/sh
dir=$(dirname "$0")
n=$(( $(cat "$dir/count" 2>/dev/null || echo 100) + 1 ))
if [ -f "$dir/refuse_from" ] && [ "$n" -ge "$(cat "$dir/refuse_from")" ]; then cat "$dir/refusal" >&2; exit 1; fi
echo "$n" > "$dir/count"
echo "Submitted batch job $n"
"""
SINFO = """#!/bin/sh
cat "$(dirname "$0")/node"
"""
NODE = "gpu* 64"  # sinfo --Node --format "%P %c": partition (* the default), CPUs
SCANCEL = """#!/bin/sh
dir=$(dirname "$0")
echo "$@" >> "$dir/scancelled"
exit "$(cat "$dir/scancel_status" 2>/dev/null || echo 0)"
"""


class FakeSlurm:
    def __init__(self, root: Path):
        self.bin = root / "bin"
        self.folder = root / "submitit"  # submitit's job folder for the tests' submits

    def refuse_from(self, job_number: int, message: str) -> None:
        """sbatch refuses its `job_number`th call (1: the first) and every later one with `message`."""
        (self.bin / "refuse_from").write_text(str(100 + job_number))
        (self.bin / "refusal").write_text(message + "\n")

    def node(self, line: str) -> None:
        """What sinfo reports of the cluster's one node ("%P %c")."""
        (self.bin / "node").write_text(line + "\n")

    def fail_scancel(self) -> None:
        (self.bin / "scancel_status").write_text("1")

    def submitted(self) -> int:
        """How many jobs sbatch accepted."""
        count = self.bin / "count"
        return int(count.read_text()) - 100 if count.exists() else 0

    def scancelled(self) -> list[str]:
        """The arguments of every scancel call, one string each."""
        path = self.bin / "scancelled"
        return path.read_text().splitlines() if path.exists() else []

    def sbatch_lines(self, job_id: str) -> dict[str, str]:
        """The #SBATCH options of job `job_id`'s script."""
        text = (self.folder / job_id / f"{job_id}_submission.sh").read_text()
        return dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", text))


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> FakeSlurm:
    fake = FakeSlurm(tmp_path)
    fake.bin.mkdir()
    for tool, text in (("sbatch", SBATCH), ("scancel", SCANCEL), ("sinfo", SINFO), ("srun", "#!/bin/sh\nexit 0\n")):
        (fake.bin / tool).write_text(text)
        (fake.bin / tool).chmod(0o755)
    fake.node(NODE)
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    return fake
