"""Each activation alone at every activation site of a network, summed: what the
activations themselves cost in `revact bench --net`'s step, without the rest of it.

    python benchmarks/site_costs.py [--net mobilenet_v2] [--acts relu6,silu,acon_c,...]
                                    [--threads 2] [--repeats 15]

The input shape of every site of the network's own activation is recorded in one forward
of `revact bench --net`'s batch; then, per activation, a fresh module per site is timed
forward and forward + backward on a random input of that shape (median of ``--repeats``,
parameters' and input's gradients reset to None before each backward, as a training step's
``zero_grad`` does), and the medians are summed over the sites, with the share of the
sites whose maps are 7×7 or smaller (the last stages, where a per-row cost shows).
"""

from __future__ import annotations

import argparse

import torch
from native_kernels import median_ms
from torch import nn

from revact.activations import create_act
from revact.bench.networks import NET_INPUT, build_net, net_shape

TORCH_ACTS = {"relu6": nn.ReLU6, "relu": nn.ReLU, "silu": nn.SiLU}


def site_shapes(net: str) -> list[tuple[int, ...]]:
    """The input shape of each call of the network's own activation, in call order."""
    model = build_net(net, None)
    own = TORCH_ACTS[NET_INPUT[net][1]]
    shapes: list[tuple[int, ...]] = []
    for module in model.modules():
        if isinstance(module, own):
            module.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    with torch.no_grad():
        model(torch.randn(net_shape(net, None)))
    return shapes


def site_ms(name: str, shape: tuple[int, ...], repeats: int) -> tuple[float, float]:
    """(forward, forward + backward) median ms of ``name`` on one site's shape."""
    module = TORCH_ACTS[name]() if name in TORCH_ACTS else create_act(name, shape[1])
    x = torch.randn(shape, requires_grad=True)
    grad = torch.randn(shape)

    def step() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).backward(grad)

    return median_ms(lambda: module(x), repeats), median_ms(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="mobilenet_v2")
    parser.add_argument("--acts", default="relu6,silu,acon_c,meta_acon,dyrelu_b,dyrelu_c")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = site_shapes(args.net)
    small = [len(s) > 2 and max(s[2:]) <= 7 for s in shapes]
    print(f"{args.net}: {len(shapes)} sites, {sum(small)} of them 7x7 or smaller, "
          f"{args.threads} threads; ms per step, summed over the sites")
    print("| activation | forward | forward + backward | of which 7x7 or smaller |")
    print("|---|---:|---:|---:|")
    for name in args.acts.split(","):
        times = [site_ms(name, s, args.repeats) for s in shapes]
        both = sum(t[1] for t in times)
        tail = sum(t[1] for t, is_small in zip(times, small, strict=True) if is_small)
        print(f"| {name} | {sum(t[0] for t in times):.1f} | {both:.1f} | {tail:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
