"""The history of nights drawn (repro history --plot)."""

from repro.figures.history_plot import history_figure
from repro.verdicts.history import entries_of
from tests.unit.verdicts.test_history import night, record


def test_plot_draws_each_metric_over_the_nights():
    entries = [e for i, aa in enumerate([60.0, 70.0, 65.0])
               for e in entries_of(record(aa=aa, clean=20.0 + i), night(f"2025-01-0{i + 1}T00:00:00Z"))]
    fig = history_figure(entries)
    panels = {ax.get_ylabel(): [list(line.get_ydata()) for line in ax.get_lines()] for ax in fig.axes}
    assert panels == {"clean_error (%)": [[20.0, 21.0, 22.0]], "pgd_error (%)": [[60.0, 60.0, 60.0]],
                      "autoattack_error (%)": [[60.0, 70.0, 65.0]]}, panels
