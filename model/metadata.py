"""The ONNX metadata contract: what a server needs to run a model, hard-coding nothing.

Keys (all values are strings; lists and objects are JSON):
    input_height, input_width   model input size in pixels
    channel_order               "RGB"
    resize                      "bilinear" (Pillow BILINEAR)
    scale, mean, std            x = (pixel * scale - mean) / std, per channel
    layout                      "NCHW"; input "image" float32, output "logits" (apply sigmoid)
    threshold                   foreground where sigmoid(logit) >= threshold
    model_name, model_version   identify the model in logs and /health
    training_data               one line on what it was trained on
    metrics                     metrics, flat (validation) or per split: {"test": {"iou": 0.94, ...}, ...}
Optional, describing the model (the card's facts, travelling with the file):
    task, dataset, split, training, license, citation
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # model.preprocessing imports torch; model.ensemble reads the keys here without it
    from model.preprocessing import Preprocessing

DEFAULT_THRESHOLD = 0.5
DESCRIPTIVE_KEYS = ("task", "dataset", "split", "training", "license", "citation")


def build_metadata(
    prep: Preprocessing,
    identity: Mapping[str, str],
    metrics: Mapping[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, str]:
    """The contract's keys, plus whichever ``DESCRIPTIVE_KEYS`` ``identity`` gives."""
    contract = {
        "input_height": str(prep.height),
        "input_width": str(prep.width),
        "channel_order": prep.channel_order,
        "resize": prep.resize,
        "scale": repr(prep.scale),
        "mean": json.dumps(list(prep.mean)),
        "std": json.dumps(list(prep.std)),
        "layout": "NCHW",
        "threshold": str(threshold),
        "model_name": identity["model_name"],
        "model_version": identity["model_version"],
        "training_data": identity["training_data"],
        "metrics": json.dumps(dict(metrics), sort_keys=True),
    }
    return {**{key: identity[key] for key in DESCRIPTIVE_KEYS if key in identity}, **contract}


def read_preprocessing(metadata: Mapping[str, str]) -> Preprocessing:
    from model.preprocessing import Preprocessing  # torch, only where a model's input is rebuilt

    return Preprocessing(
        height=int(metadata["input_height"]),
        width=int(metadata["input_width"]),
        channel_order=metadata["channel_order"],
        resize=metadata["resize"],
        scale=float(metadata["scale"]),
        mean=tuple(json.loads(metadata["mean"])),
        std=tuple(json.loads(metadata["std"])),
    )
