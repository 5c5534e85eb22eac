"""A constant is defined once: no two module-level tables in repro/ say the same thing.

Two dictionaries that map one key to one value (metric names, relation operators, the image count
each error rate is measured on) are one definition written twice; they drift apart the day one is
edited. Read from the source (ast), so a copy is found however it is spelled.
"""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "repro"


def module_level_dict_items() -> dict[tuple[str, str], set[str]]:
    """(key, value) as source text -> the "module:NAME" tables that hold it."""
    found = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            value = getattr(node, "value", None)
            if not isinstance(target, ast.Name) or not isinstance(value, ast.Dict):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{target.id}"
            for key, item in zip(value.keys, value.values):
                if key is not None:
                    found[(ast.unparse(key), ast.unparse(item))].add(where)
    return found


def test_no_two_module_tables_map_a_key_to_the_same_value():
    copies = {pair: sorted(places) for pair, places in module_level_dict_items().items() if len(places) > 1}
    assert not copies, "defined more than once (import one from the other): " + "; ".join(
        f"{key}: {value} in {', '.join(places)}" for (key, value), places in sorted(copies.items()))
