"""PyTorch reference of PocketNet's search network and one DARTS search step, written from the
spec (§2.2-§2.5) in the style of :mod:`tests.torch_reference` (test-only; requires torch).

- :class:`SearchCNN`: the supernet (stem, cells of mixed edges, grouped-GDC tail, classifier)
  with the alphas as two parameter lists.
- :class:`Architect`: the original's second-order step: a virtual SGD step on a deep copy of the
  network, the unrolled validation gradient, and the finite-difference Hessian-vector product
  evaluated by perturbing the real network's weights in place (spec §2.5 steps 1-4).
- :func:`search_step`: alpha step then weight step (textbook DARTS), as ``SearchModel``.
- :func:`load_keras_weights`: copies a built :class:`pocketnet_tf.search.search_network.SearchNetwork`
  (weights, alphas, BN statistics) into a :class:`SearchCNN` of the same configuration.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pocketnet_tf.genotypes import PRIMITIVES
from tests.torch_reference import DWConv, FactorizedReduce, StdConv, make_op


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride] * 0.0


class MixedOp(nn.Module):
    def __init__(self, channels, stride):
        super().__init__()
        self._ops = nn.ModuleList(
            Zero(stride) if p == "none" else make_op(p, channels, stride, affine=False) for p in PRIMITIVES
        )

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops))


class SearchCell(nn.Module):
    def __init__(self, num_nodes, c_pp, c_p, channels, reduction_prev, reduction):
        super().__init__()
        self.reduction = reduction
        self.preproc0 = (FactorizedReduce(c_pp, channels, affine=False) if reduction_prev
                         else StdConv(c_pp, channels, affine=False))
        self.preproc1 = StdConv(c_p, channels, affine=False)
        self.dag = nn.ModuleList(
            nn.ModuleList(MixedOp(channels, 2 if reduction and j < 2 else 1) for j in range(i + 2))
            for i in range(num_nodes)
        )

    def forward(self, s0, s1, w_dag):
        states = [self.preproc0(s0), self.preproc1(s1)]
        for edges, w_list in zip(self.dag, w_dag):
            states.append(sum(edge(s, w) for edge, s, w in zip(edges, states, w_list)))
        return torch.cat(states[2:], dim=1)


class SearchCNN(nn.Module):
    """The supernet of ``SearchNetwork`` with the same constructor arguments (NCHW input)."""

    def __init__(self, num_classes, channels=16, num_cells=8, num_nodes=4, stem_multiplier=3,
                 embedding_size=128, head_width=512, gdc_groups=128, input_size=112):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, 2, 1, bias=False), nn.BatchNorm2d(c_stem))
        reductions = {num_cells // 3, 2 * num_cells // 3, num_cells - 1}  # spec §2.2
        c_pp, c_p, c_cur, reduction_prev = c_stem, c_stem, channels, False
        self.cells = nn.ModuleList()
        for i in range(num_cells):
            reduction = i in reductions
            c_cur = 2 * c_cur if reduction else c_cur
            self.cells.append(SearchCell(num_nodes, c_pp, c_p, c_cur, reduction_prev, reduction))
            c_pp, c_p, reduction_prev = c_p, num_nodes * c_cur, reduction
        side = input_size // 2 ** (1 + len(reductions))
        self.tail = nn.Sequential(
            nn.PReLU(c_p), nn.Conv2d(c_p, head_width, 1, bias=False), nn.BatchNorm2d(head_width),
            nn.PReLU(head_width), nn.Conv2d(head_width, head_width, side, groups=gdc_groups, bias=False),
            nn.BatchNorm2d(head_width), nn.Conv2d(head_width, embedding_size, 1, bias=False),
            nn.BatchNorm2d(embedding_size),
        )
        self.linear = nn.Linear(embedding_size, num_classes)
        shapes = [(i + 2, len(PRIMITIVES)) for i in range(num_nodes)]
        self.alpha_normal = nn.ParameterList(nn.Parameter(torch.zeros(s)) for s in shapes)
        self.alpha_reduce = nn.ParameterList(nn.Parameter(torch.zeros(s)) for s in shapes)

    def alphas(self):
        return list(self.alpha_normal) + list(self.alpha_reduce)

    def weights(self):
        alpha_ids = {id(a) for a in self.alphas()}
        return [p for p in self.parameters() if id(p) not in alpha_ids]

    def forward(self, x):
        w_normal = [F.softmax(a, dim=-1) for a in self.alpha_normal]
        w_reduce = [F.softmax(a, dim=-1) for a in self.alpha_reduce]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.linear(torch.flatten(self.tail(s1), 1))

    def loss(self, x, y):
        return F.cross_entropy(self(x), y)


# ---------------------------------------------------------------------------------------------
# One search step (spec §2.5), the original's Architect


class Architect:
    """Second-order alpha gradient as the original computes it: a virtual step on a deep copy
    ``v_net``, then the finite-difference Hessian-vector product on the real network's weights,
    perturbed in place and restored."""

    def __init__(self, net, w_momentum=0.9, w_weight_decay=3e-4):
        self.net = net
        self.v_net = copy.deepcopy(net)
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay

    def virtual_step(self, trn_x, trn_y, xi, w_optim):
        gradients = torch.autograd.grad(self.net.loss(trn_x, trn_y), self.net.weights())
        with torch.no_grad():
            for w, vw, g in zip(self.net.weights(), self.v_net.weights(), gradients):
                m = w_optim.state[w].get("momentum_buffer", 0.0) * self.w_momentum if w_optim else 0.0
                vw.copy_(w - xi * (m + g + self.w_weight_decay * w))
            for a, va in zip(self.net.alphas(), self.v_net.alphas()):
                va.copy_(a)

    def unrolled_backward(self, trn_x, trn_y, val_x, val_y, xi, w_optim):
        """Sets ``alpha.grad`` = dalpha - xi * h; returns the unrolled validation loss."""
        self.virtual_step(trn_x, trn_y, xi, w_optim)
        loss = self.v_net.loss(val_x, val_y)
        v_alphas, v_weights = tuple(self.v_net.alphas()), tuple(self.v_net.weights())
        grads = torch.autograd.grad(loss, v_alphas + v_weights)
        dalpha, dw = grads[: len(v_alphas)], grads[len(v_alphas):]
        hessian = self.compute_hessian(dw, trn_x, trn_y)
        with torch.no_grad():
            for alpha, da, h in zip(self.net.alphas(), dalpha, hessian):
                alpha.grad = da - xi * h
        return loss.detach()

    def compute_hessian(self, dw, trn_x, trn_y):
        eps = 0.01 / torch.cat([d.reshape(-1) for d in dw]).norm()
        with torch.no_grad():
            for p, d in zip(self.net.weights(), dw):
                p += eps * d
        dalpha_pos = torch.autograd.grad(self.net.loss(trn_x, trn_y), self.net.alphas())
        with torch.no_grad():
            for p, d in zip(self.net.weights(), dw):
                p -= 2.0 * eps * d
        dalpha_neg = torch.autograd.grad(self.net.loss(trn_x, trn_y), self.net.alphas())
        with torch.no_grad():
            for p, d in zip(self.net.weights(), dw):
                p += eps * d
        return [(p - n) / (2.0 * eps) for p, n in zip(dalpha_pos, dalpha_neg)]


def optimizers(net, lr=0.1, alpha_lr=1.2e-3):
    """The original's two optimisers (spec §2.1); gradient clipping is done in :func:`search_step`."""
    w_optim = torch.optim.SGD(net.weights(), lr, momentum=0.9, weight_decay=3e-4)
    a_optim = torch.optim.Adam(net.alphas(), alpha_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    return w_optim, a_optim


def search_step(net, architect, w_optim, a_optim, trn, val, clip_norm=5.0):
    """Textbook DARTS: second-order alpha step, then the weight step at the new alpha."""
    (trn_x, trn_y), (val_x, val_y) = trn, val
    xi = w_optim.param_groups[0]["lr"]
    a_optim.zero_grad()
    architect.unrolled_backward(trn_x, trn_y, val_x, val_y, xi, w_optim)
    a_optim.step()
    w_optim.zero_grad()
    loss = net.loss(trn_x, trn_y)
    loss.backward()
    nn.utils.clip_grad_norm_(net.weights(), clip_norm)
    w_optim.step()
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# Weights from the Keras search network


def _t(value, dtype, *axes):
    array = np.asarray(value)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(axes) if axes else array)).to(dtype)


@torch.no_grad()
def _copy_bn(bn, layer, dtype):
    bn.running_mean.copy_(_t(layer.moving_mean, dtype))
    bn.running_var.copy_(_t(layer.moving_variance, dtype))
    if bn.affine:
        bn.weight.copy_(_t(layer.gamma, dtype))
        bn.bias.copy_(_t(layer.beta, dtype))


@torch.no_grad()
def _copy_op(module, layer, dtype):
    """One edge or pre-processing op; Keras kernels HWIO / (k, k, C, 1) to torch OIHW / (C, 1, k, k)."""
    if isinstance(module, DWConv):
        prelu, dw, pw, bn = module.net
        prelu.weight.copy_(_t(layer.prelu.alpha, dtype).reshape(-1))
        dw.weight.copy_(_t(layer.depthwise.kernel, dtype, 2, 3, 0, 1))
        pw.weight.copy_(_t(layer.pointwise.kernel, dtype, 3, 2, 0, 1))
        _copy_bn(bn, layer.bn, dtype)
    elif isinstance(module, FactorizedReduce):
        module.relu.weight.copy_(_t(layer.prelu.alpha, dtype).reshape(-1))
        for conv, kernel, axes in ((module.conv11, layer.depthwise_a.kernel, (2, 3, 0, 1)),
                                   (module.conv12, layer.pointwise_a.kernel, (3, 2, 0, 1)),
                                   (module.conv21, layer.depthwise_b.kernel, (2, 3, 0, 1)),
                                   (module.conv22, layer.pointwise_b.kernel, (3, 2, 0, 1))):
            conv.weight.copy_(_t(kernel, dtype, *axes))
        _copy_bn(module.bn, layer.bn, dtype)
    elif hasattr(module, "bn"):  # PoolBN
        _copy_bn(module.bn, layer.bn, dtype)


@torch.no_grad()
def load_keras_weights(net: SearchCNN, keras_net, dtype=torch.float32) -> SearchCNN:
    """Copies every weight, alpha and BN statistic of ``keras_net`` into ``net`` (cast to ``dtype``)."""
    net.to(dtype)
    net.stem[0].weight.copy_(_t(keras_net.stem_conv.kernel, dtype, 3, 2, 0, 1))
    _copy_bn(net.stem[1], keras_net.stem_bn, dtype)
    for cell, kcell in zip(net.cells, keras_net.cells):
        _copy_op(cell.preproc0, kcell.preproc0, dtype)
        _copy_op(cell.preproc1, kcell.preproc1, dtype)
        for i, edges in enumerate(cell.dag):
            for j, mixed in enumerate(edges):
                for module, layer in zip(mixed._ops, kcell.edge(i, j).candidates):
                    _copy_op(module, layer, dtype)
    prelu0, conv1, bn2, prelu3, gdc, bn5, conv6, bn7 = net.tail
    k = keras_net.tail
    prelu0.weight.copy_(_t(k[0].alpha, dtype).reshape(-1))
    conv1.weight.copy_(_t(k[1].kernel, dtype, 3, 2, 0, 1))
    _copy_bn(bn2, k[2], dtype)
    prelu3.weight.copy_(_t(k[3].alpha, dtype).reshape(-1))
    gdc.weight.copy_(_t(k[4].kernel, dtype, 3, 2, 0, 1))
    _copy_bn(bn5, k[5], dtype)
    conv6.weight.copy_(_t(k[6].kernel, dtype, 3, 2, 0, 1))
    _copy_bn(bn7, k[7], dtype)
    net.linear.weight.copy_(_t(keras_net.classifier.kernel, dtype, 1, 0))
    net.linear.bias.copy_(_t(keras_net.classifier.bias, dtype))
    for a, ka in zip(net.alphas(), keras_net.alphas):
        a.copy_(_t(ka, dtype))
    return net
