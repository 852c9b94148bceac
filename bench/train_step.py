"""Seconds per training image for the UNet on this machine: precision x memory format x input side.

    python -m bench.train_step --batch-size 8 --steps 3

What model.train's defaults (bf16 autocast, contiguous tensors on CPU, a 128 crop phase) were
chosen by; MODEL_CARD.md quotes a run of it. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from model.losses import dice_bce_loss
from model.unet import UNet

CASES = [(side, precision, layout) for side in (128, 256) for precision in ("fp32", "bf16")
         for layout in ("contiguous", "channels_last")]


def seconds_per_image(side: int, precision: str, layout: str, batch_size: int, steps: int) -> float:
    """Median over ``steps`` timed steps (after one warm-up) of forward + backward + AdamW, per image."""
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = UNet().to(memory_format=fmt).train()  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch_size, 3, side, side).contiguous(memory_format=fmt)
    targets = (torch.rand(batch_size, 1, side, side) > 0.5).float()
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(inputs)
        loss = dice_bce_loss(logits.float(), targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) / batch_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = [
        {"side": side, "precision": precision, "layout": layout,
         "s_per_image": round(seconds_per_image(side, precision, layout, args.batch_size, args.steps), 3)}
        for side, precision, layout in CASES
    ]
    result = {"rows": rows, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
              "load_average_1min": [load_before, os.getloadavg()[0]]}
    print(json.dumps(result))  # noqa: T201 - the last line is the result


if __name__ == "__main__":
    main()
