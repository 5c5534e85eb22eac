"""ResNet-20 architecture facts (Section 3.2, Table 1)."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.model import BasicBlock, ResNet20, bn_layers, count_parameters, parameters_in
from repro.paper.groups import BN, CONV1, LOGITS, PARAMETER_GROUPS, REST
from repro.paper.table1 import table1_percent


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


# Written here, not imported: the per-channel CIFAR-10 training-set statistics the model must
# normalise its [0, 1] inputs with.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def randomised_bn(model):
    """Give every BN layer distinct gamma, beta and running statistics, so no BN is an identity."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model


def reference_forward(model, x, training):
    """ResNet-20 as Section 3.2 describes it, written with functional ops: conv -> BN -> ReLU.

    Reads only the weights of `model`; the order of operations is this function's own.
    """
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def bn(layer, z):
        return F.batch_norm(z, layer.running_mean.clone(), layer.running_var.clone(), layer.weight, layer.bias,
                            training=training, momentum=0.1, eps=1e-5)

    def conv(layer, z):
        return F.conv2d(z, layer.weight, stride=layer.stride, padding=layer.padding)

    out = F.relu(bn(model.bn1, conv(model.conv1, (x - mean) / std)))
    for block in model.blocks:
        shortcut = out
        if len(block.shortcut) > 0:
            shortcut = bn(block.shortcut[1], conv(block.shortcut[0], out))
        inner = F.relu(bn(block.bn1, conv(block.conv1, out)))
        out = F.relu(bn(block.bn2, conv(block.conv2, inner)) + shortcut)
    return F.linear(out.mean((2, 3)), model.fc.weight, model.fc.bias)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_forward_is_normalise_conv_bn_relu(tiny_model, batch, training):
    model = randomised_bn(tiny_model).train(training)
    images, _ = batch
    with torch.no_grad():
        expected = reference_forward(model, images, training)
        logits = model(images)
    assert logits.shape == expected.shape == (16, 10), f"logits are (B, 10): {tuple(logits.shape)}"
    gap = (logits - expected).abs().max().item()
    assert gap < 1e-4, f"forward differs from normalise -> conv -> BN -> ReLU (Section 3.2) by {gap}"


def test_stem_convolution_sees_normalised_images(tiny_model, batch):
    images, _ = batch
    seen = []
    tiny_model.conv1.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    with torch.no_grad():
        tiny_model.eval()(images)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(seen[0], (images - mean) / std, atol=1e-6), (
        "the first convolution must see (x - CIFAR-10 mean) / std: attacks work on [0, 1] images")


def test_bn_momentum_is_pytorch_default(tiny_model, batch):
    # One training-mode forward moves every running mean by 0.1 of the way to the batch mean
    # (PyTorch's default, which the paper's implementation inherits); computed from what each
    # BN layer actually received.
    images, _ = batch
    model = randomised_bn(tiny_model).train()
    seen = {}
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    for name, layer in layers:
        layer.register_forward_pre_hook(lambda _m, inputs, name=name: seen.__setitem__(name, inputs[0].detach()))
    before = {name: (layer.running_mean.clone(), layer.running_var.clone()) for name, layer in layers}
    with torch.no_grad():
        model(images)
    wrong = []
    for name, layer in layers:
        z = seen[name]
        mean = 0.9 * before[name][0] + 0.1 * z.mean((0, 2, 3))
        var = 0.9 * before[name][1] + 0.1 * z.var((0, 2, 3), unbiased=True)
        if not (torch.allclose(layer.running_mean, mean, atol=1e-5) and torch.allclose(layer.running_var, var, atol=1e-4)):
            wrong.append(name)
    assert wrong == [], f"BN layers whose running statistics do not move with momentum 0.1: {wrong}"


@pytest.mark.parametrize("buffer", ["mean", "std"])
def test_normalisation_is_not_state(tiny_model, buffer):
    assert buffer not in tiny_model.state_dict(), f"input normalisation constant {buffer!r} is not checkpointed"


@pytest.mark.parametrize("width, accepted", [(-1, False), (0, False), (1, True), (2, True)])
def test_width_accepted_exactly_when_positive(width, accepted):
    # Any positive width is a valid (if narrow) model; width 1 is the smallest.
    if accepted:
        model = ResNet20(width=width)
        assert model.width == width == model.conv1.out_channels, (
            f"ResNet20(width={width}) must report width {width} and have {width} stem channels, "
            f"got width {model.width}, {model.conv1.out_channels} channels")
    else:
        with pytest.raises(ValueError, match="width must be a positive integer"):
            ResNet20(width=width)


def test_feature_maps_halve_at_each_stage_start():
    # He et al.'s CIFAR ResNet: the stem and stage 1 keep 32x32, stages 2 and 3 start with a
    # stride-2 block, giving 16x16 and 8x8 maps with width, 2*width, 4*width channels.
    width = 2
    model = ResNet20(width=width).eval()
    shapes = {}
    model.bn1.register_forward_hook(lambda _m, _i, out: shapes.__setitem__("stem", tuple(out.shape[1:])))
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda _m, _i, out, i=i: shapes.__setitem__(f"block{i}", tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    expected = {"stem": (width, 32, 32)}
    expected.update({f"block{i}": (width * 2 ** (i // 3), 32 // 2 ** (i // 3), 32 // 2 ** (i // 3)) for i in range(9)})
    assert shapes == expected, f"feature map (C, H, W) per stage differ from ResNet-20's: {shapes}, expected {expected}"


@pytest.mark.parametrize("in_channels, out_channels, stride", [(4, 4, 1), (4, 8, 1), (4, 4, 2), (4, 8, 2)])
def test_block_output_follows_its_channels_and_stride(in_channels, out_channels, stride):
    # A block whose shape changes in channels, in resolution or both must still add its shortcut
    # (a projection shortcut); only a shape-preserving block may use the identity.
    block = BasicBlock(in_channels, out_channels, stride).eval()
    with torch.no_grad():
        out = block(torch.rand(2, in_channels, 8, 8))
    expected = (2, out_channels, 8 // stride, 8 // stride)
    assert tuple(out.shape) == expected, f"BasicBlock({in_channels}, {out_channels}, {stride}) gives {tuple(out.shape)}, expected {expected}"


def test_convolutions_start_with_kaiming_fan_out():
    # He initialisation in fan-out mode (torchvision's ResNet convention): weight std
    # sqrt(2 / (out_channels * k * k)); conv1 and the shortcuts have fan-in != fan-out.
    torch.manual_seed(0)
    model = ResNet20(width=16)
    wrong = {}
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d):
            out_channels, _, kh, kw = conv.weight.shape
            expected = (2 / (out_channels * kh * kw)) ** 0.5
            ratio = conv.weight.std().item() / expected
            if not 0.8 < ratio < 1.2:
                wrong[name] = round(ratio, 3)
    assert wrong == {}, f"convolutions whose weight std is not sqrt(2 / fan_out) (ratio shown): {wrong}"
