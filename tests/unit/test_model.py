"""ResNet-20 architecture facts (Section 3.2, Table 1)."""

import pytest
from repro.configs import table1_percent
from repro.model import BN, CONV1, LOGITS, PARAMETER_GROUPS, REST, ResNet20, bn_layers, count_parameters, parameters_in


@pytest.fixture(scope="module")
def paper_model():
    return ResNet20(width=64)


def test_width64_parameter_count(paper_model):
    assert count_parameters(paper_model) == 4_327_754, "width-64 ResNet-20 with projection shortcuts"


def test_width64_bn_parameter_count(paper_model):
    assert count_parameters(paper_model, (BN,)) == 6_272, "BN gamma/beta of width-64 ResNet-20"


def test_width64_bn_fraction_is_table1(paper_model):
    fraction = 100 * count_parameters(paper_model, (BN,)) / count_parameters(paper_model)
    assert table1_percent(fraction) == 0.15, f"Table 1 says BN is 0.15% of parameters, got {fraction:.4f}%"


def test_width16_bn_fraction_is_not_table1():
    model = ResNet20(width=16)
    fraction = 100 * count_parameters(model, (BN,)) / count_parameters(model)
    assert table1_percent(fraction) != 0.15, f"width 16 must not match Table 1 ({fraction:.4f}%)"


def test_width16_parameter_count():
    assert count_parameters(ResNet20(width=16)) == 272_474, "He et al.'s width with projection shortcuts"


def test_has_21_bn_layers(tiny_model):
    # conv1's BN, 2 per block x 9 blocks, and 2 projection shortcuts.
    assert len(bn_layers(tiny_model)) == 21, "ResNet-20 has 21 BN layers with projection shortcuts"


def test_logits_and_conv1_groups_are_exactly_named(tiny_model):
    assert {n for n, _ in parameters_in(tiny_model, (LOGITS,))} == {"fc.weight", "fc.bias"}, "logits group"
    assert {n for n, _ in parameters_in(tiny_model, (CONV1,))} == {"conv1.weight"}, "conv1 group"


def test_bn_group_is_every_bn_gamma_and_beta(tiny_model):
    expected = {f"{name}.{p}" for name, _ in bn_layers(tiny_model) for p in ("weight", "bias")}
    assert {n for n, _ in parameters_in(tiny_model, (BN,))} == expected, "bn group = all BN gamma/beta"


def test_every_group_is_non_empty(tiny_model):
    empty = [g for g in PARAMETER_GROUPS if not parameters_in(tiny_model, (g,))]
    assert empty == [], f"parameter groups with no parameter: {empty}"


def test_groups_are_pairwise_disjoint(tiny_model):
    members = {g: {id(p) for _, p in parameters_in(tiny_model, (g,))} for g in PARAMETER_GROUPS}
    overlaps = [(a, b) for i, a in enumerate(PARAMETER_GROUPS) for b in PARAMETER_GROUPS[i + 1:]
                if members[a] & members[b]]
    assert overlaps == [], f"parameter groups share tensors: {overlaps}"


def test_group_sizes_add_up_to_all_parameters(tiny_model):
    sizes = {g: count_parameters(tiny_model, (g,)) for g in PARAMETER_GROUPS}
    total = sum(p.numel() for p in tiny_model.parameters())  # counted without the group machinery
    assert sum(sizes.values()) == total, f"group sizes {sizes} sum to {sum(sizes.values())}, model has {total}"


def test_rest_holds_only_convolutions(tiny_model):
    names = [n for n, _ in parameters_in(tiny_model, (REST,))]
    assert all(n.startswith("blocks.") and "conv" in n or "shortcut.0" in n for n in names), names


def test_unknown_group_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="unknown parameter group"):
        parameters_in(tiny_model, ("bnn",))


def test_forward_shape(tiny_model, batch):
    images, _ = batch
    assert tiny_model(images).shape == (16, 10), "logits are (B, 10)"


def test_normalisation_is_not_state(tiny_model):
    assert "mean" not in tiny_model.state_dict(), "input normalisation constants are not checkpointed"
