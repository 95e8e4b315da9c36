"""Size report of a registered model: parameters, paper FLOPs, MACs."""

from __future__ import annotations

from pocketnet_tf.models.flops import count_cost
from pocketnet_tf.models.registry import build, get_preset


def summarize(name: str, *, embedding_size=None, genotype=None, input_size: int = 112) -> dict:
    preset = get_preset(name)
    model = build(name, genotype=genotype, embedding_size=embedding_size, input_size=input_size)
    cost = count_cost(model)
    out_dim = int(model.outputs[0].shape[-1])
    return {
        "model": name,
        "description": preset.description,
        "input_size": input_size,
        "embedding_size": out_dim,
        "trainable_params": cost.trainable_params,
        "non_trainable_params": cost.non_trainable_params,
        "flops": cost.flops,
        "mflops": round(cost.flops / 1e6, 4),
        "macs": cost.macs,
        "flops_breakdown": cost.breakdown,
    }


def format_summary(s: dict) -> str:
    lines = [
        f"{s['model']}: {s['description']}",
        f"  input                {s['input_size']}x{s['input_size']}x3",
        f"  embedding size       {s['embedding_size']}",
        f"  trainable params     {s['trainable_params']:,}",
        f"  non-trainable        {s['non_trainable_params']:,} (BatchNorm moving statistics)",
        f"  FLOPs (paper count)  {s['flops']:,} = {s['mflops']} MFLOPs",
        f"  MACs (conv + dense)  {s['macs']:,}",
    ]
    for k, v in sorted(s["flops_breakdown"].items()):
        lines.append(f"    {k:<18} {v:,}")
    return "\n".join(lines)
