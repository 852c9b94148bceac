"""Export a plain ``.pth`` state_dict (the old service's weights) to ONNX.

    python -m model.convert old_unet.pth model.onnx --name old-unet --version 1.0.0

Accepts a bare state_dict, ``{"state_dict": ...}`` or ``{"model_state_dict": ...}``,
with or without DataParallel's ``module.`` prefix. The architecture's widths are
read off the weights; preprocessing defaults to the reference model's unless
given. Export parity is verified exactly as ``model.export`` does.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from model.export import export_onnx
from model.metadata import build_metadata
from model.preprocessing import Preprocessing
from model.unet import UNet, UNetConfig

log = logging.getLogger("model.convert")

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def unwrap_state_dict(loaded: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint in any of the common wrappings, prefixes removed."""
    for key in WRAPPER_KEYS:
        if isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    prefix = "module."
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in loaded.items()}


def config_from_state_dict(state: dict[str, torch.Tensor]) -> UNetConfig:
    """Widths and channels from the first and last convolutions' shapes."""
    first, last = state["inc.double_conv.0.weight"], state["outc.conv.weight"]
    return UNetConfig(in_channels=first.shape[1], out_channels=last.shape[0], base_width=first.shape[0])


def load_pth(path: Path) -> UNet:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    state = unwrap_state_dict(loaded)
    model = UNet(config_from_state_dict(state))
    model.load_state_dict(state, strict=True)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pth", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="unet")
    parser.add_argument("--version", default="0.0.0")
    parser.add_argument("--image-size", type=int, default=256, help="the side the weights were trained at")
    parser.add_argument("--mean", type=float, nargs=3, default=Preprocessing.mean)
    parser.add_argument("--std", type=float, nargs=3, default=Preprocessing.std)
    parser.add_argument("--training-data", default="unknown (converted from a .pth state_dict)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    prep = Preprocessing(height=args.image_size, width=args.image_size, mean=tuple(args.mean), std=tuple(args.std))
    identity = {"model_name": args.name, "model_version": args.version, "training_data": args.training_data}
    export_onnx(load_pth(args.pth), prep, args.out, build_metadata(prep, identity, {}))
    log.info("wrote %s, parity verified", args.out)


if __name__ == "__main__":
    main()
