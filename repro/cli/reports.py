"""`repro figures`, `repro report` and `repro variants`: what finished runs show, and the open choices."""

from __future__ import annotations

import argparse
from pathlib import Path

from repro.cli.options import add_gate_option, over_seeds, seeds_of, settings_from
from repro.paper.choices import CHOICES
from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import load_expected
from repro.paper.variants import register_text
from repro.runs.pipeline import Pipeline, RunSettings
from repro.verdicts.outcome import EXIT_CODES_TEXT, gated
from repro.verdicts.report import write_report, write_seed_report

GATED = {"epilog": EXIT_CODES_TEXT, "formatter_class": argparse.RawDescriptionHelpFormatter}  # commands that judge


def add_commands(sub, common) -> None:
    """Register figures, report and variants on the subparsers `sub`."""
    p = sub.add_parser("figures", parents=[common], help="Figures 1-3 from trained NORMAL, ADV and BN PARAMS (PNG + JSON)")
    p.add_argument("--figures-dir", help="where to write them (default: RUN_FOLDER/figures, linked from report.md)")
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("report", parents=[common], help="Table 2 and the claims from finished runs (also report.md)",
                       **GATED)
    p.add_argument("--variants", action="store_true",
                   help="instead: every reading of the open choices that has been run, beside the paper's values")
    add_gate_option(p)
    p.set_defaults(func=cmd_report)
    sub.add_parser("variants", help="the paper's open choices: sentences, readings, evidence, rows").set_defaults(
        func=cmd_variants)
    p = sub.add_parser("ladder", help="runs trained with --set ladder_epochs: their points and the claims at each "
                                      "(ladder.md), and their learning curves (ladder.png)", **GATED)
    p.add_argument("folders", nargs="+", metavar="RUN_FOLDER",
                   help="OUT/BUDGET[+READINGS]/seedS folders; every folder's ladders are listed and drawn, the claims "
                        "judge a row from the first folder that has it")
    p.add_argument("--out", default=None, help="folder for ladder.md and ladder.png (default: the first RUN_FOLDER)")
    p.add_argument("--title", default="The fine-tuning ladder", help="the report's heading")
    add_gate_option(p)
    p.set_defaults(func=cmd_ladder)
    p = sub.add_parser("compare", help="two run folders of the same rows: each error metric within the two-run "
                                       "band or not (e.g. an acceleration mode against fp32, a rerun against a record)",
                       **GATED)
    p.add_argument("folders", nargs="+", metavar="RUN_FOLDER",
                   help="REFERENCE OTHER: two OUT/BUDGET[+READINGS]/seedS folders; with --mode, every reference "
                        "(fp32) folder, seeds and rows together (a row's first folder counts for its seed)")
    p.add_argument("--mode", nargs="+", metavar="MODE_FOLDER",
                   help="folders run in an acceleration mode, judged against the reference folders as a family "
                        "(fine-tuning rows paired on their starting NORMAL; repro/verdicts/mode_rule.py); the "
                        "exit code is the rule's: 0 approved, 1 refused, 3 needs a second seed")
    p.add_argument("--out", help="also write the comparison here (Markdown)")
    p.add_argument("--refuse-into", metavar="SELFCHECK_JSON",
                   help="with --mode: when the mode rule refuses, refuse the arithmetic switches (bf16, compile) the "
                        "mode's rows ran with at their budget in this selfcheck.json")
    add_gate_option(p)
    p.set_defaults(func=cmd_compare)


    p = sub.add_parser("status", help="where the reproduction stands: one line per report under results/ "
                                      "(the README's status table), from each report's verdicts.json")
    p.add_argument("--results", default="results", help="the evidence folder (default: results)")
    p.add_argument("--refresh", action="store_true",
                   help="first write every report.md and verdicts.json under --results again from their records")
    p.add_argument("--readme", metavar="FILE", help="also put the table into FILE between its status markers")
    p.add_argument("--figure", metavar="PNG", help="also draw the evidence beside the paper into PNG: Table 2 of one "
                                                   "seed's report, and the fine-tuning ladder (e.g. docs/status.png)")
    p.set_defaults(func=cmd_status)


FIGURE_CHOICES = tuple(c.id for c in CHOICES.values() if c.figures)


def cmd_figures(args) -> int:
    from repro.figures.make import load_figure_models, make_figures

    several = len(seeds_of(args)) > 1

    def figures_seed(settings):
        pipeline = Pipeline(settings)
        out_dir = Path(args.figures_dir) if args.figures_dir else None
        if out_dir is not None and several:  # one subfolder per seed: their files share names
            out_dir = out_dir / f"seed{settings.seed}"
        figure_readings = {c: r for c, r in settings.variants.items() if c in FIGURE_CHOICES}
        if out_dir is None and figure_readings:  # keep the default figures; these go beside them
            out_dir = pipeline.run_folder / ("figures" + "".join(f"+{c}={r}" for c, r in figure_readings.items()))
        paths = make_figures(
            pipeline.run_folder, settings.budget, settings.seed, settings.device, pipeline.data, out_dir,
            models=load_figure_models(pipeline.run_folder, settings.budget, settings.seed, settings.device,
                                      configure=pipeline.configuration),
            figure3_logits=settings.variants.get("figure3_logits", CHOICES["figure3_logits"].default))
        for path in paths:
            print(path)
        if out_dir is None:  # refresh the report so it links the figures
            write_report(pipeline.run_folder, load_expected(), settings.budget)

    over_seeds(args, figures_seed)
    return 0


def cmd_variants(args) -> int:
    print(register_text())
    return 0


def cmd_report(args) -> int:
    settings = settings_from(args)
    if args.variants:
        return gated(_report_variants(settings, seeds_of(args)), args.no_gate)
    seeds = seeds_of(args)
    pipeline = Pipeline(settings)
    folder = pipeline.run_folder if len(seeds) == 1 else pipeline.budget_folder
    if not folder.exists():
        raise ValueError(f"no runs in {folder}; run `repro reproduce --budget {settings.budget.name}` first")
    if len(seeds) == 1:
        written = write_report(folder, load_expected(), settings.budget)
    else:  # over seeds: a seed without runs shows as missing in the report
        written = write_seed_report(folder, seeds, load_expected(), settings.budget)
    print(written.text)
    print(f"\nreport: {written.path}")
    return gated(written.code, args.no_gate)


def _report_variants(settings: RunSettings, seeds: list[int]) -> int:
    """`repro report --variants`: every reading run, beside the paper's values (repro/verdicts/compare.py);
    one comparison per seed asked for (OUT/BUDGET/variants-seedS.md); returns their exit code."""
    from repro.runs.checkpoint import atomic_write_bytes
    from repro.verdicts.compare import COMPARISON_NAME, comparison_code, comparison_rows, render_comparison
    from repro.verdicts.outcome import EXIT_FAILS

    expected = load_expected()
    codes = []
    for seed in seeds:
        text = render_comparison(expected, settings.out, settings.budget, seed)
        path = Path(settings.out) / settings.budget.run_name / COMPARISON_NAME.format(seed=seed)
        atomic_write_bytes(path, text.encode())
        print(text)
        print(f"\ncomparison: {path}\n")
        codes.append(comparison_code(expected, comparison_rows(expected, settings.out, settings.budget, seed),
                                     settings.budget))
    return EXIT_FAILS if EXIT_FAILS in codes else min(codes)


def cmd_ladder(args) -> int:
    """`repro ladder`: rows from several run folders, their ladder points and the claims along them."""
    from repro.figures.curves import curve_series, write_curves
    from repro.runs.checkpoint import atomic_write_bytes
    from repro.verdicts.ladder import is_laddered, ladder_claims, ladder_code, render_ladder
    from repro.verdicts.like_for_like import check_same_protocol
    from repro.verdicts.report import collect_results
    from repro.verdicts.table2 import attack_of

    records, labels, series, shown, named = {}, {}, [], [], []
    expected = load_expected()
    for folder in map(Path, args.folders):
        if not folder.is_dir():
            raise ValueError(f"no run folder {folder}; pass OUT/BUDGET[+READINGS]/seedS folders")
        name = folder.parent.name  # BUDGET[+READINGS]: what tells the folders apart
        results = collect_results(folder)
        named += [(f"{folder}/{c}", r) for c, r in results.items()]
        found = {c: r for c, r in results.items() if c not in records}  # the claims judge a row's first
        records.update(found)
        labels.update({c: f"{CONFIGURATIONS[c].label} ({name})" for c in found})
        laddered = {c: r for c, r in results.items() if is_laddered(r) or c in found}  # shown: every ladder
        shown += [(f"{CONFIGURATIONS[c].label} ({name})", r) for c, r in laddered.items()]
        series += curve_series({c: r for c, r in laddered.items() if is_laddered(r)}, expected, name)
    if not any(is_laddered(r) for r in records.values()):
        raise ValueError("none of these runs has a ladder: train them with --set ladder_epochs=1,2,4 (for example)")
    check_same_protocol(named)  # one line naming both records where two were measured differently
    out = Path(args.out) if args.out else Path(args.folders[0])
    text = render_ladder(expected, records, labels, args.title, shown, attack=attack_of(records.values()))
    atomic_write_bytes(out / "ladder.md", text.encode())
    print(text)
    for path in [out / "ladder.md"] + write_curves(series, out, "ladder", title=args.title):
        print(path)
    return gated(ladder_code(ladder_claims(expected, records, labels)), args.no_gate)


def _seed_records(folders: list[Path]) -> dict[int, dict[str, dict]]:
    """{seed: {config_id: record}} of several run folders; a row's first folder counts for its seed."""
    from repro.verdicts.report import collect_results

    out: dict[int, dict[str, dict]] = {}
    for folder in folders:
        records = collect_results(folder)
        if not records:
            raise ValueError(f"no result.json under {folder}; pass OUT/BUDGET[+READINGS]/seedS folders")
        for config_id, record in records.items():
            out.setdefault(record["seed"], {}).setdefault(config_id, record)
    return out


def cmd_compare(args) -> int:
    """`repro compare`: two run folders' common rows, each error metric within the two-run band or not;
    with --mode, the mode's folders against the reference's under the mode rule."""
    from repro.runs.checkpoint import atomic_write_bytes
    from repro.verdicts.agreement import agreement, agreement_code, render_agreement
    from repro.verdicts.like_for_like import check_same_protocol

    if args.mode is None and len(args.folders) != 2:
        raise ValueError("repro compare takes two run folders (REFERENCE OTHER), or reference folders and --mode "
                         f"MODE_FOLDER ...; got {len(args.folders)}")
    references, modes = (list(map(Path, args.folders)), list(map(Path, args.mode))) if args.mode else (
        [Path(args.folders[0])], [Path(args.folders[1])])
    reference, mode = _seed_records(references), _seed_records(modes)
    check_same_protocol([(f"{seed}/{c}", r) for side in (reference, mode) for seed, rows in side.items()
                         for c, r in rows.items()])
    expected = load_expected()
    if args.mode:
        from repro.verdicts.mode_rule import APPROVED, REFUSED, mode_verdict, render_mode_verdict, summary
        from repro.verdicts.outcome import EXIT_FAILS, EXIT_HOLDS, EXIT_NOTHING_JUDGED

        verdict = mode_verdict(reference, mode, expected)
        text = (f"# {', '.join(map(str, modes))} against {', '.join(map(str, references))} (the mode rule)\n\n"
                + render_mode_verdict(verdict, "reference", "mode"))
        code = {APPROVED: EXIT_HOLDS, REFUSED: EXIT_FAILS}.get(verdict.outcome, EXIT_NOTHING_JUDGED)
        refused = verdict.outcome == REFUSED
        reason = "; ".join(verdict.reasons) or summary(verdict)
    else:
        (first,), (second,) = reference.values(), mode.values()
        entries = agreement(first, second, expected)
        if not entries:
            raise ValueError(f"{references[0]} and {modes[0]} share no row; compare folders of the same rows")
        # Each folder by the path given: OUT/BUDGET/seedS alone is ambiguous (a kept record and a rerun of it
        # are both cifar_cpu/seed0).
        text = render_agreement(entries, str(references[0]), str(modes[0]))
        code = agreement_code(entries)
        refused, reason = False, ""
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
    print(text)
    if args.refuse_into:
        _refuse(args, reference, mode, refused, reason, approved=bool(args.mode) and code == EXIT_HOLDS)
    return gated(code, args.no_gate)


def _refuse(args, reference: dict[int, dict[str, dict]], mode: dict[int, dict[str, dict]], refused: bool,
            reason: str, approved: bool = False) -> None:
    """--refuse-into: record the mode rule's verdict on the arithmetic switches the mode's rows ran with:
    a refusal refuses them at their budget; an approval lifts an earlier refusal of them there."""
    from repro.ops.refusal import lift_from, refusal, refuse_into

    if not args.mode:
        raise ValueError("--refuse-into needs the mode rule: pass the fp32 folders and --mode MODE_FOLDER ...")
    def named(side):
        return {f"seed{seed}/{c}": r for seed, rows in side.items() for c, r in rows.items()}

    comparison = args.out or f"repro compare {' '.join(args.folders)} --mode {' '.join(args.mode)}"
    found = refusal(named(mode), reason, comparison, reference=named(reference)) if refused else {}
    if found:
        now = refuse_into(Path(args.refuse_into), found)
        print(f"refused in {args.refuse_into}: {', '.join(found)}; approved there now: {now}")
    elif approved:
        lifted, now = lift_from(Path(args.refuse_into), named(mode), reason, comparison)
        print(f"lifted in {args.refuse_into}: {', '.join(lifted)}; approved there now: {now}" if lifted else
              f"nothing to lift in {args.refuse_into}: no refusal of the mode's switches at its budget")
    else:
        print(f"nothing refused in {args.refuse_into}: the mode rule did not refuse, or no bf16/compile was on")


def cmd_status(args) -> int:
    """`repro status`: the status table of the reports under --results (refreshed first with --refresh)."""
    from repro.verdicts.report import REPORT_NAME, refresh
    from repro.verdicts.status import embed, embedded_table, status_table

    results = Path(args.results)
    if not results.is_dir():
        raise ValueError(f"no evidence folder {results}; pass --results DIR")
    if args.refresh:
        expected = load_expected()
        for report in sorted(results.rglob(REPORT_NAME)):
            print(f"{refresh(report.parent, expected).path}")
    readme = Path(args.readme) if args.readme else None
    table = status_table(results, readme.parent if readme else None)
    if readme:
        text = readme.read_text()
        if embedded_table(text) is None:
            raise ValueError(f"{readme} has no status markers; put the two lines <!-- status:start --> and "
                             "<!-- status:end --> where the table goes")
        readme.write_text(embed(text, table))
    print(table, end="")
    if args.figure:
        from repro.figures.status_figure import write_status_figure

        print(f"figure: {write_status_figure(results, Path(args.figure), load_expected())}")
    return 0
