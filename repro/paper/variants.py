"""Selecting and applying readings of the paper's open choices (the register: repro/paper/choices.py).

Select readings with `--variant CHOICE=READING` (repeatable) or REPRO_VARIANT="CHOICE=READING,...";
`repro variants` prints the register. A row trains under readings as `apply_variants` rewrites its
registry configuration; run folders, results and reports name the non-default readings.
"""

from __future__ import annotations

import dataclasses

from repro.paper.choices import CHOICES, TRAINING, Choice, UnknownVariantError
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL, Configuration


def parse_variants(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{choice: reading} from "CHOICE=READING" strings, the non-default ones only, in register order.

    Raises UnknownVariantError (one line, listing the valid choices or readings) for an unknown
    choice or reading, a string without "=", or two readings of one choice.
    """
    chosen: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UnknownVariantError(f"--variant expects CHOICE=READING, got {pair!r}; choices: {', '.join(CHOICES)}")
        choice_id, reading_id = (part.strip() for part in pair.split("=", 1))
        if choice_id not in CHOICES:
            raise UnknownVariantError(f"unknown open choice {choice_id!r}; valid choices: {', '.join(CHOICES)} "
                                      "(see `repro variants`)")
        CHOICES[choice_id].reading(reading_id)
        if chosen.get(choice_id, reading_id) != reading_id:
            raise UnknownVariantError(f"open choice {choice_id} given two readings: {chosen[choice_id]} and {reading_id}")
        chosen[choice_id] = reading_id
    return {c: chosen[c] for c in CHOICES if c in chosen and chosen[c] != CHOICES[c].default}


def parse_variant_list(text: str) -> dict[str, str]:
    """parse_variants for a comma-separated "CHOICE=READING,..." (REPRO_VARIANT); empty means defaults."""
    return parse_variants([p for p in text.split(",") if p.strip()])


def apply_variants(config: Configuration, variants: dict[str, str]) -> Configuration:
    """The configuration `config.id` trains under the readings `variants` ({choice: reading}).

    Starts from the registry row, so applying twice gives the same configuration; with no
    non-default reading it is the registry row itself.
    """
    result = CONFIGURATIONS[config.id]
    for choice_id, choice in CHOICES.items():
        if choice_id not in variants:
            continue
        reading = choice.reading(variants[choice_id])
        changes = reading.changes.get(config.id)
        if changes and all(getattr(result, k) == v for k, v in reading.when.items()):
            result = dataclasses.replace(result, **changes)
    return result


def affected_rows(choice: Choice) -> tuple[str, ...]:
    """The rows whose numbers `choice` can move, in Table 2 order: each row some reading of it changes
    (applied alone with apply_variants, so a reading's `when` condition counts), and, where a reading
    changes NORMAL, every row fine-tuned from NORMAL (they start from a NORMAL trained under the same
    readings). A row no reading changes is not listed, even if the choice names it."""
    changed = {c.id for c in CONFIGURATIONS.values() for reading in choice.readings
               if apply_variants(c, {choice.id: reading.id}) != c}
    if NORMAL.id in changed:
        changed |= {c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL}
    return tuple(c for c in CONFIGURATIONS if c in changed)


def config_changes(config: Configuration) -> dict[str, object] | None:
    """The fields in which `config` differs from its registry row, or None where it is that row."""
    registered = CONFIGURATIONS[config.id]
    changed = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(registered, f.name)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()} or None


def training_variants(variants: dict[str, str]) -> dict[str, str]:
    """The readings among `variants` that change training (the others share trained models)."""
    return {c: r for c, r in variants.items() if CHOICES[c].scope == TRAINING}


def folder_suffix(variants: dict[str, str]) -> str:
    """What a run folder's name gets for `variants`: "" for the defaults, else "+choice=reading..."."""
    return "".join(f"+{c}={r}" for c, r in training_variants(variants).items())


def describe(variants: dict[str, str] | None) -> str:
    """One line naming the readings: "paper defaults" or "choice=reading, ..."."""
    return ", ".join(f"{c}={r}" for c, r in (variants or {}).items()) or "defaults (see `repro variants`)"


def register_text() -> str:
    """The register as `repro variants` prints it."""
    out = []
    for choice in CHOICES.values():
        out.append(f"{choice.id}: {choice.question}")
        for sentence, where in choice.sentences:
            out.append(f'  "{sentence}" ({where})')
        for reading in choice.readings:
            mark = " (default)" if reading.id == choice.default else ""
            out.append(f"  {choice.id}={reading.id}{mark}: {reading.meaning}")
            out.append(f"      evidence: {reading.evidence}")
        target = ", ".join(affected_rows(choice)) if choice.scope == TRAINING else ", ".join(choice.figures)
        out.append(f"  affects: {target}")
        out.append("")
    out.append("select with --variant CHOICE=READING (repeatable); compare with `repro report --variants`")
    return "\n".join(out)
