"""The paper budget's projected wall time from measured throughput, on 1, 4 and 8 GPUs.

Rows are placed on GPUs as the nightly runs them (docs/cluster.md): NORMAL and the
other from-scratch rows start at once, the fine-tuning rows (Table 1 "Fine-tune") wait for NORMAL.
"""

from __future__ import annotations

from repro.paper.budgets import Budget
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL
from repro.runs.timing import row_seconds

GPU_COUNTS = (1, 4, 8)
HOW = ("NORMAL first, the other from-scratch rows at once on free GPUs (longest first); fine-tuning rows "
       "from when NORMAL ends, each on the GPU free first (longest first); two rows share a GPU when two "
       "concurrent rows measured faster than one (each then at half the pair's rate); with k GPUs, the best "
       "such schedule using at most k of them")


def makespan(rows: dict[str, float], waits_for_normal: set[str], slots: int) -> float:
    """Seconds until every row of `rows` (id -> seconds) ends on `slots` parallel slots.

    Greedy list scheduling: NORMAL, then the other independent rows, then the rows in
    `waits_for_normal`, each group longest first, each row on the slot free first, no row in
    `waits_for_normal` starting before NORMAL ends.
    """
    free = [0.0] * slots
    normal_end = 0.0
    independent = sorted((r for r in rows if r not in waits_for_normal and r != NORMAL.id), key=rows.get, reverse=True)
    waiting = sorted(waits_for_normal & rows.keys(), key=rows.get, reverse=True)
    for row in ([NORMAL.id] if NORMAL.id in rows else []) + independent + waiting:
        slot = min(range(slots), key=free.__getitem__)
        start = max(free[slot], normal_end if row in waits_for_normal else 0.0)
        free[slot] = start + rows[row]
        normal_end = free[slot] if row == NORMAL.id else normal_end
    return max(free)


def setting_rates(throughput: dict, mode: str) -> dict[str, float]:
    """timing.row_seconds' rates from a selfcheck's `mode` column.

    BN STATS (forward only after the attack) is costed at the BN-only step, an upper bound; the
    evaluation PGD at APGD-CE's rate per iteration (both one forward and one input-gradient
    backward per iteration).
    """
    rate = {name: throughput[name][mode]["images_per_second"] for name in
            ("clean_autoaugment", "pgd10_step", "bn_only_step", "apgd_ce")}
    return {"clean_step": rate["clean_autoaugment"], "adversarial_step": rate["pgd10_step"],
            "forward_adversarial": rate["bn_only_step"], "pgd_eval_per_iteration": rate["apgd_ce"]}


def projection(throughput: dict, mode: str, budget: Budget, sizes) -> dict:
    """Projected wall time of `budget`'s rows, per row and in total on 1, 4 and 8 GPUs, in the
    selfcheck's `mode` (its approved one: the fastest that passed, acceleration.approved_mode)."""
    rates = setting_rates(throughput, mode)
    per_iteration = rates.pop("pgd_eval_per_iteration")
    rates["pgd_eval"] = per_iteration * sizes.apgd_iterations / budget.eval_pgd_steps
    rows = {c.id: row_seconds(c, budget, rates, budget.train_images) for c in CONFIGURATIONS.values()}
    waiting = {c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL}
    concurrent = throughput["two_rows_concurrently"]["speedup"]
    slots, stretch = (2, 2 / concurrent) if concurrent > 1 else (1, 1.0)
    stretched = {row: seconds * stretch for row, seconds in rows.items()}
    gpus = {}
    for count in GPU_COUNTS:
        gpus[str(count)] = min(makespan(stretched, waiting, k * slots) for k in range(1, count + 1))
    return {"budget": budget.name, "setting": mode, "row_seconds": rows, "total_row_seconds": sum(rows.values()),
            "rows_per_gpu": slots, "gpus_seconds": gpus, "how": HOW,
            "measured_at": f"width {sizes.width}, batch {sizes.batch_size} (the budget's width is {budget.width})"}
