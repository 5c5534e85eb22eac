"""Equation 1: BatchNorm in eval mode is the per-channel affine map m*z + b."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from repro.mechanics.bn_analysis import fold_bn, fold_conv_bn, fold_model, mean_m_per_layer, mean_normalized_weight
from repro.mechanics.model import ResNet20

finite = st.floats(-10, 10, allow_nan=False)
positive = st.floats(1e-3, 100, allow_nan=False)


@st.composite
def bn_layer(draw, max_channels=6):
    """An eval-mode float64 BN layer with arbitrary gamma, beta, mu and sigma^2 > 0."""
    channels = draw(st.integers(1, max_channels))
    layer = nn.BatchNorm2d(channels, eps=draw(st.sampled_from([1e-5, 1e-3, 0.1]))).double().eval()
    vector = lambda values: torch.tensor(draw(st.lists(values, min_size=channels, max_size=channels)), dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(vector(finite))
        layer.bias.copy_(vector(finite))
        layer.running_mean.copy_(vector(finite))
        layer.running_var.copy_(vector(positive))
    return layer


@settings(max_examples=50, deadline=None)
@given(layer=bn_layer(), seed=st.integers(0, 2**31), scale=st.floats(0.1, 100))
def test_eval_bn_equals_m_z_plus_b(layer, seed, scale):
    z = scale * torch.randn(3, layer.num_features, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    m, b = fold_bn(layer)
    folded = m.view(1, -1, 1, 1) * z + b.view(1, -1, 1, 1)
    with torch.no_grad():
        expected = layer(z)
    assert torch.allclose(folded, expected, rtol=1e-10, atol=1e-10), "eval BN != m*z + b"


@settings(max_examples=30, deadline=None)
@given(layer=bn_layer(), seed=st.integers(0, 2**31), bias=st.booleans(), stride=st.sampled_from([1, 2]))
def test_conv_then_bn_folds_into_one_conv(layer, seed, bias, stride):
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, layer.num_features, 3, stride, 1, bias=bias).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(conv(x))
        actual = fold_conv_bn(conv, layer)(x)
    assert torch.allclose(actual, expected, rtol=1e-9, atol=1e-9), "folded conv differs from conv + BN"


def test_hand_computed_example():
    layer = nn.BatchNorm2d(2, eps=1.0).eval()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -3.0]))
        layer.bias.copy_(torch.tensor([0.5, 1.0]))
        layer.running_mean.copy_(torch.tensor([1.0, -2.0]))
        layer.running_var.copy_(torch.tensor([3.0, 8.0]))
    m, b = fold_bn(layer)
    # m = gamma / sqrt(var + eps): 2/2, -3/3; b = beta - gamma*mu/sqrt(var + eps): 0.5 - 1, 1 - 2.
    assert torch.allclose(m, torch.tensor([1.0, -1.0])), f"m = {m}"
    assert torch.allclose(b, torch.tensor([-0.5, -1.0])), f"b = {b}"


# ResNet-20's 21 BN layers, written out: the stem's, two per block for 9 blocks, and the BNs of the
# two projection shortcuts where stages 2 and 3 start (blocks 3 and 6). Figure 2's x-axis is this order.
RESNET20_BN_NAMES = [
    "bn1",
    "blocks.0.bn1", "blocks.0.bn2", "blocks.1.bn1", "blocks.1.bn2", "blocks.2.bn1", "blocks.2.bn2",
    "blocks.3.bn1", "blocks.3.bn2", "blocks.3.shortcut.1", "blocks.4.bn1", "blocks.4.bn2", "blocks.5.bn1", "blocks.5.bn2",
    "blocks.6.bn1", "blocks.6.bn2", "blocks.6.shortcut.1", "blocks.7.bn1", "blocks.7.bn2", "blocks.8.bn1", "blocks.8.bn2",
]
# Channels of each of those layers as multiples of the width: 7 layers per stage (16/32/64 at width 16).
RESNET20_BN_WIDTH_MULTIPLES = [1] * 7 + [2] * 7 + [4] * 7


def test_fold_model_covers_every_bn_layer_in_order():
    names = [f.name for f in fold_model(ResNet20(width=2))]
    assert names == RESNET20_BN_NAMES, f"Equation 1 must cover ResNet-20's 21 BN layers in order, got {names}"


def test_fold_model_gives_m_per_channel():
    width = 2
    shapes = [tuple(f.m.shape) for f in fold_model(ResNet20(width=width))]
    expected = [(width * k,) for k in RESNET20_BN_WIDTH_MULTIPLES]
    assert shapes == expected, f"one m per channel of each BN layer: got {shapes}"


def test_untracked_statistics_are_rejected():
    with pytest.raises(ValueError, match="^Equation 1 needs running statistics"):
        fold_bn(nn.BatchNorm2d(3, track_running_stats=False))


@pytest.mark.parametrize("missing", ["running_mean", "running_var"])
def test_either_missing_statistic_is_rejected(missing):
    layer = nn.BatchNorm2d(3).eval()
    setattr(layer, missing, None)  # the other statistic is still there
    with pytest.raises(ValueError, match="^Equation 1 needs running statistics"):
        fold_bn(layer)  # m needs sigma^2 and b needs mu: without either, Equation 1 is undefined


# "meta" is a device other than the CPU that every machine has; CUDA as well where there is one.
DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_folded_conv_lives_on_the_conv_device(device):
    conv = nn.Conv2d(3, 4, 3, padding=1, device=device)
    layer = nn.BatchNorm2d(4, device=device).eval()
    fused = fold_conv_bn(conv, layer)
    devices = {t.device.type for t in (fused.weight, fused.bias)}
    assert devices == {device}, (
        f"the folded convolution must sit on the conv's device ({device}) to run on its inputs, got {devices}")


def test_mean_abs_gamma_per_layer_by_hand():
    from repro.mechanics.bn_analysis import mean_abs_gamma_per_layer
    from repro.mechanics.model import bn_layers

    model = ResNet20(width=2)
    with torch.no_grad():
        for index, (_, layer) in enumerate(bn_layers(model)):
            layer.weight.copy_(torch.tensor([index + 1.0, -(index + 1.0)]).repeat(layer.num_features // 2))
    measured = mean_abs_gamma_per_layer(model)
    assert measured == [float(i + 1) for i in range(len(bn_layers(model)))], f"mean |gamma| per layer: {measured}"


def test_bn_without_gamma_has_mean_abs_gamma_one():
    from repro.mechanics.bn_analysis import mean_abs_gamma_per_layer

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[2].weight.fill_(-0.5)
    measured = mean_abs_gamma_per_layer(model)
    assert measured == [1.0, 0.5], f"a BN layer without gamma scales by 1 (gamma = 1), the other by |-0.5|: {measured}"


def test_bn_without_gamma_and_beta_is_m_z_plus_b():
    layer = nn.BatchNorm2d(3, affine=False).double().eval()
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    z = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m, b = fold_bn(layer)
    folded = m.view(1, -1, 1, 1) * z + b.view(1, -1, 1, 1)
    assert torch.allclose(folded, layer(z), atol=1e-12), "BN without affine parameters: gamma = 1, beta = 0"


@pytest.mark.parametrize("padding, dilation, groups, padding_mode",
                         [(0, 1, 1, "zeros"), (2, 2, 1, "zeros"), (1, 1, 2, "zeros"), (1, 1, 1, "reflect")])
def test_any_convolution_geometry_folds(padding, dilation, groups, padding_mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, 1, padding, dilation, groups, bias=False, padding_mode=padding_mode).double()
    layer = nn.BatchNorm2d(6).double().eval()
    with torch.no_grad():
        layer.running_var.uniform_(0.5, 2.0)
        layer.running_mean.normal_()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        expected, actual = layer(conv(x)), fold_conv_bn(conv, layer)(x)
    assert actual.shape == expected.shape and torch.allclose(actual, expected, atol=1e-9), (
        f"folding a conv with padding {padding}, dilation {dilation}, groups {groups}, {padding_mode} padding")


def test_mean_normalized_weight_is_the_mean_of_layer_means():
    model = ResNet20(width=2)
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for i, layer in enumerate(layers):  # layer i: m = i + 1 on every channel
            layer.weight.fill_(i + 1.0)
            layer.running_var.fill_(1.0 - layer.eps)
    assert mean_m_per_layer(model) == pytest.approx([i + 1.0 for i in range(21)]), "one mean m per BN layer, in order"
    assert mean_normalized_weight(model) == pytest.approx(11.0), "mean of 1..21 over ResNet-20's 21 BN layers"
