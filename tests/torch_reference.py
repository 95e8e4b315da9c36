"""PyTorch reference networks, written from the spec, for checking imported weights (test-only).

- :class:`AugmentCNN`: PocketNet's derived network (spec §1.2, §1.3, §3.2) with the original's
  module tree, so its ``state_dict`` has the original's keys (``stem.*``, ``cells.i.preproc0/1``,
  ``cells.i.dag.n.e``, ``tail.*``).
- :class:`IResNet`: insightface's iResNet (spec §6.7): ``conv1``, ``bn1``, ``prelu``,
  ``layer{1..4}.<i>.*``, ``bn2``, ``fc``, ``features``; NCHW flatten before ``fc``.

:func:`randomize_` fills a network with random weights, BN statistics, BN affine parameters and
PReLU slopes so that an inference-mode comparison exercises every tensor.

Requires torch (the ``torch`` test extra).
"""

from __future__ import annotations

import torch
from torch import nn

from pocketnet_tf import genotypes as genotypes_lib

# One intra-op thread: beside TensorFlow's pool on a shared 2-core machine, torch's default (one
# thread per core) made an iresnet18 forward 20-40x slower through spin-waiting.
torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# PocketNet operations (spec §1.2)


class DWConv(nn.Module):
    """PReLU -> depthwise k x k -> pointwise 1x1 -> BN, as ``net.0 .. net.3``."""

    def __init__(self, c_in, c_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.net = nn.Sequential(
            nn.PReLU(c_in),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.net(x)


class StdConv(DWConv):
    def __init__(self, c_in, c_out, affine=True):
        super().__init__(c_in, c_out, 1, 1, 0, affine)


class FactorizedReduce(nn.Module):
    """Shared PReLU; two 1x1 stride-2 paths, the second on the input without its first row/column."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.relu = nn.PReLU(c_in)
        self.conv11 = nn.Conv2d(c_in, c_in, 1, 2, 0, groups=c_in, bias=False)
        self.conv12 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv21 = nn.Conv2d(c_in, c_in, 1, 2, 0, groups=c_in, bias=False)
        self.conv22 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        a = self.conv12(self.conv11(x))
        b = self.conv22(self.conv21(x[:, :, 1:, 1:]))
        return self.bn(torch.cat([a, b], dim=1))


class PoolBN(nn.Module):
    def __init__(self, pool_type, channels, stride, affine=True):
        super().__init__()
        if pool_type == "max":
            self.pool = nn.MaxPool2d(3, stride, 1)
        else:
            self.pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        self.bn = nn.BatchNorm2d(channels, affine=affine)

    def forward(self, x):
        return self.bn(self.pool(x))


def make_op(primitive: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    if primitive in ("max_pool_3x3", "avg_pool_3x3"):
        return PoolBN(primitive[:3], channels, stride, affine)
    if primitive == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
    if primitive.startswith("dw_conv_"):
        k = int(primitive[len("dw_conv_")])
        return DWConv(channels, channels, k, stride, k // 2, affine)
    raise ValueError(f"no reference op for {primitive!r}")


# ---------------------------------------------------------------------------------------------
# Derived cell and network (spec §1.3, §3.2)


class AugmentCell(nn.Module):
    def __init__(self, genotype, c_pp, c_p, channels, reduction_prev, reduction):
        super().__init__()
        self.preproc0 = FactorizedReduce(c_pp, channels) if reduction_prev else StdConv(c_pp, channels)
        self.preproc1 = StdConv(c_p, channels)
        nodes, self.concat = genotype.cell(reduction)
        self.sources = [[src for _, src in edges] for edges in nodes]
        self.dag = nn.ModuleList(
            nn.ModuleList(
                make_op(primitive, channels, 2 if (reduction and src < 2) else 1) for primitive, src in edges
            )
            for edges in nodes
        )

    def forward(self, s0, s1):
        states = [self.preproc0(s0), self.preproc1(s1)]
        for ops, sources in zip(self.dag, self.sources):
            states.append(sum(op(states[src]) for op, src in zip(ops, sources)))
        return torch.cat([states[i] for i in self.concat], dim=1)


class AugmentCNN(nn.Module):
    """PocketNet derived network; input NCHW RGB in [-1, 1], output the raw embedding."""

    def __init__(self, channels=16, num_cells=18, embedding_size=128, genotype="softmax_casia",
                 stem_multiplier=4, head_width=None, input_size=112):
        super().__init__()
        geno = genotypes_lib.resolve(genotype)
        head = head_width or (1024 if embedding_size == 512 else 512)
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, 2, 1, bias=False), nn.BatchNorm2d(c_stem))
        reductions = {num_cells // 3, 2 * num_cells // 3, num_cells - 1}
        c_pp, c_p, c_cur = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        size = (input_size + 1) // 2
        for i in range(num_cells):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
                size = (size + 1) // 2
            cell = AugmentCell(geno, c_pp, c_p, c_cur, reduction_prev, reduction)
            self.cells.append(cell)
            c_pp, c_p = c_p, len(cell.concat) * c_cur
            reduction_prev = reduction
        self.tail = nn.Sequential(
            nn.PReLU(c_p),
            nn.Conv2d(c_p, head, 1, bias=False),
            nn.BatchNorm2d(head),
            nn.PReLU(head),
            nn.Conv2d(head, head, size, groups=head, bias=False),
            nn.BatchNorm2d(head),
            nn.Conv2d(head, embedding_size, 1, bias=False),
            nn.BatchNorm2d(embedding_size),
        )

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return torch.flatten(self.tail(s1), 1)


# ---------------------------------------------------------------------------------------------
# insightface iResNet (spec §6.7)

IRESNET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5)
            )

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, depth=50, embedding_size=512, input_size=112):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for stage, (blocks, planes) in enumerate(zip(IRESNET_STAGES[depth], (64, 128, 256, 512)), start=1):
            layers = []
            for b in range(blocks):
                layers.append(IBasicBlock(inplanes, planes, 2 if b == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=0.0)
        side = input_size // 16
        self.fc = nn.Linear(512 * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)  # NCHW: channel-major
        return self.features(self.fc(self.dropout(x)))


# ---------------------------------------------------------------------------------------------


#: Images whose batch statistics seed the BN running statistics in :func:`randomize_`. With 4, the
#: final BatchNorm1d of an iresnet50 saw too few samples and some embedding entries reached 20.
CALIBRATION_BATCH = 16


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, input_size: int | None = None) -> nn.Module:
    """Random weights, BN statistics and affine parameters, and PReLU slopes; returns ``module``
    in eval mode. iResNet's frozen ``features.weight`` stays 1.

    With ``input_size``, every BN's running statistics are first set to the statistics of a random
    batch of ``CALIBRATION_BATCH`` images (so that deep residual stacks keep O(1) activations and
    the embedding stays O(1)), then perturbed at random (mean
    shifted by 0.2 standard deviations, variance scaled by U(0.6, 1.6)); without it they are drawn
    directly (mean N(0, 0.2), variance U(0.5, 2)).
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return torch.rand(shape, generator=gen) * (high - low) + low

    batch_norms = []
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            fan_in = sub.weight[0].numel()
            sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
            if sub.bias is not None:
                sub.bias.copy_(torch.randn(sub.bias.shape, generator=gen) * 0.1)
        elif isinstance(sub, nn.PReLU):
            sub.weight.copy_(uniform(sub.weight.shape, -0.2, 0.6))
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            batch_norms.append(sub)
            c = sub.num_features
            sub.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            sub.running_var.copy_(uniform(c, 0.5, 2.0))
            if sub.affine:
                if sub.weight.requires_grad:
                    sub.weight.copy_(uniform(c, 0.5, 1.5))
                sub.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    if input_size is not None:
        for bn in batch_norms:
            bn.momentum = None  # cumulative average: one batch sets the statistics exactly
            bn.reset_running_stats()
        module.train()(torch.rand((CALIBRATION_BATCH, 3, input_size, input_size), generator=gen) * 2 - 1)
        for bn in batch_norms:
            bn.momentum = 0.1
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.randn(bn.num_features, generator=gen) * 0.2 * std)
            bn.running_var.mul_(uniform(bn.num_features, 0.6, 1.6))
    for bn in batch_norms:
        bn.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))
    return module.eval()


@torch.no_grad()
def embed(module: nn.Module, images_nhwc):
    """Runs ``module`` (eval mode) on NHWC numpy images; returns a numpy embedding."""
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
    return module.eval()(x).numpy()
