"""Train the UNet.

    python -m model.ccp ../shared/datasets/clothing-co-parsing --out data/ccp     # real photos -> train/ val/ test/
    python -m model.train --data data/ccp/train --val-data data/ccp/val --max-minutes 110 \
        --crop-size 128 --out runs/person                     # the bundled person model (MODEL_CARD.md)
    python -m model.train --data synthetic --epochs 20 --out runs/ref
    python -m model.train --data /path/to/dataset --epochs 50 --batch-size 8   # images/ + masks/
    python -m model.train --resume runs/person/last.pt ...    # the same arguments: carries on where it stopped
    python -m model.train --train-size 64 --val-size 16 --batch-size 8 --base-width 8 --image-size 128 \
        --epochs 3 --out runs/quick          # a smoke run: about a minute on 2 CPUs

``--data`` is ``synthetic``, a folder of ``images/`` + ``masks/`` paired by stem, or a
Clothing Co-Parsing folder (its train part; ``--val-data`` defaults to its val part).
Writes ``last.pt`` every epoch and ``best.pt`` whenever validation IoU improves, and
appends each epoch's figures to ``history.jsonl`` (the learning curve); each checkpoint
carries the model config, the preprocessing and the metrics, so
``python -m model.export runs/ref/best.pt model.onnx`` needs nothing else.
Runs unchanged on CPU and on CUDA (``--device cuda``), in bfloat16 autocast on both
unless ``--precision fp32``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm import tqdm

from model.augment import RECIPES, augment_batch
from model.ccp import CCPDataset, is_ccp_root
from model.datasets import FolderDataset, SyntheticDataset, materialise
from model.losses import OverlapMeter, dice_bce_loss
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED, describe_synthetic
from model.unet import UNet, UNetConfig, count_parameters

log = logging.getLogger("model.train")

# Defaults: chosen on the synthetic task; each can be overridden on the command line.
EPOCHS = 20  # the cosine schedule spans all of them
BATCH_SIZE = 16  # fits a laptop CPU's memory at 256x256; use 32-64 on a GPU
LEARNING_RATE = 2e-3  # AdamW with InstanceNorm tolerates a high rate; cosine takes it to ~0
WEIGHT_DECAY = 1e-4
WARMUP_FRACTION = 0.03  # linear warm-up over the first 3% of training
TRAIN_SIZE = 20_000  # distinct generated training images (augmented anew each epoch)
VAL_SIZE = 500  # generated validation images, from their own seed
DATA_BUDGET_FRACTION = 0.5  # of --max-minutes, at most, for generating or loading the data
# With --crop-size, random crops for this fraction of the schedule (cheaper steps: 0.05 s an image at
# 128x128 vs 0.35 s at 256x256 on 2 CPU cores in bf16, python -m bench.train_step), then whole frames:
# InstanceNorm's statistics differ between a crop and a whole photo, so training must end on whole frames.
CROP_FRACTION = 0.6


@dataclass
class Progress:
    """Where training stands; the schedule follows steps or wall time, whichever is further."""

    total_steps: int
    max_seconds: float | None
    step: int = 0
    epoch: int = 0
    started: float = 0.0

    @property
    def fraction(self) -> float:
        by_steps = self.step / max(self.total_steps, 1)
        by_time = (time.monotonic() - self.started) / self.max_seconds if self.max_seconds else 0.0
        return min(max(by_steps, by_time), 1.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", default="synthetic", help="'synthetic', a folder with images/ and masks/, or a CCP folder"
    )
    parser.add_argument("--val-data", type=Path, default=None, help="validation folder (default: from --data)")
    parser.add_argument("--augment", choices=sorted(RECIPES), default=None, help="default: synthetic or photos")
    parser.add_argument("--crop-size", type=int, default=None, help="train on crops of this side first")
    parser.add_argument("--crop-fraction", type=float, default=CROP_FRACTION, help="of the schedule, in crops")
    parser.add_argument("--val-every", type=int, default=1, help="validate every N epochs of the crop phase")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="autocast for training steps")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (and anneal) by wall time")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--image-size", type=int, default=256, help="square model input side")
    parser.add_argument("--base-width", type=int, default=32, help="UNet width; 32 is the reference")
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE, help="synthetic only")
    parser.add_argument("--val-size", type=int, default=VAL_SIZE, help="synthetic only")
    parser.add_argument("--seed", type=int, default=0, help="synthetic training seed (validation uses seed+1)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating/loading data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/unet"))
    parser.add_argument("--resume", type=Path, default=None, help="a last.pt to continue from")
    return parser.parse_args(argv)


def build_datasets(
    args: argparse.Namespace, prep: Preprocessing, deadline: float | None
) -> tuple[TensorDataset, TensorDataset, str]:
    """Train and validation sets, generated or loaded once into memory at the model's size, by ``deadline``."""
    train, val, description = data_sources(args, prep)
    validation = materialise(val, args.workers, "validation", deadline)
    return materialise(train, args.workers, "training", deadline), validation, description


def data_sources(args: argparse.Namespace, prep: Preprocessing) -> tuple[Dataset, Dataset, str]:
    """(train, validation, one line describing them) for ``--data`` and ``--val-data``."""
    if args.data == "synthetic":
        if HELDOUT_SEED in (args.seed, args.seed + 1):
            raise SystemExit(f"seed {HELDOUT_SEED} is reserved for the held-out evaluation set")
        train: Dataset = SyntheticDataset(args.train_size, prep, seed=args.seed)
        val: Dataset = SyntheticDataset(args.val_size, prep, seed=args.seed + 1)
        return train, val, describe_synthetic([args.seed])
    root = Path(args.data)
    if is_ccp_root(root):
        train, val = CCPDataset(root, "train", prep), CCPDataset(root, "val", prep)
        description = f"Clothing Co-Parsing at {root.name}, the fixed split of model.ccp"
    elif args.val_data:
        train, val = FolderDataset(root, prep), FolderDataset(args.val_data, prep)
        description = f"folder datasets {root.name} (train) and {args.val_data.name} (validation)"
    else:
        full = FolderDataset(root, prep)
        val_indices = list(range(0, len(full), 10))  # every 10th pair, deterministic
        train = Subset(full, sorted(set(range(len(full))) - set(val_indices)))
        val = Subset(full, val_indices)
        description = f"folder dataset {root.name}: {len(full)} image/mask pairs"
    if args.val_data and is_ccp_root(root):
        val = FolderDataset(args.val_data, prep)
    return train, val, f"{description}; {len(train)} train / {len(val)} validation images"  # type: ignore[arg-type]


def make_loader(dataset: TensorDataset, args: argparse.Namespace, shuffle: bool) -> DataLoader:
    """Batches from memory; augmentation happens later, on the training device."""
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=shuffle,
        drop_last=shuffle,
        pin_memory=args.device.startswith("cuda"),
    )


def memory_format(device: str) -> torch.memory_format:
    """channels_last feeds cuDNN's fastest convolutions; on CPU it was slower here."""
    return torch.channels_last if device.startswith("cuda") else torch.contiguous_format


def learning_rate(base: float, fraction: float) -> float:
    if fraction < WARMUP_FRACTION:
        return base * fraction / WARMUP_FRACTION
    cosine = (fraction - WARMUP_FRACTION) / (1 - WARMUP_FRACTION)
    return base * 0.5 * (1 + math.cos(math.pi * cosine))


def train_epoch(
    model: UNet,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    progress: Progress,
    args: argparse.Namespace,
    prep: Preprocessing,
) -> float:
    model.train()
    losses = []
    bar = tqdm(loader, desc=f"epoch {progress.epoch + 1}", leave=False, disable=None)
    for images, masks in bar:
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(args.lr, progress.fraction)
        loss = train_step(model, optimiser, (images, masks), args, prep, crop_side(args, progress.fraction))
        progress.step += 1
        losses.append(loss)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{optimiser.param_groups[0]['lr']:.2e}")
        if progress.fraction >= 1.0 or (args.max_steps and progress.step >= args.max_steps):
            break
    return sum(losses) / max(len(losses), 1)


def crop_side(args: argparse.Namespace, fraction: float) -> int | None:
    """The crop phase's side while it lasts (``--crop-size``), then whole frames (None)."""
    return args.crop_size if args.crop_size and fraction < args.crop_fraction else None


def train_step(
    model: UNet,
    optimiser: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor],
    args: argparse.Namespace,
    prep: Preprocessing,
    out_size: int | None,
) -> float:
    """One optimiser step on an augmented batch; the forward pass in bf16 autocast unless fp32."""
    images, masks = (tensor.to(args.device, non_blocking=True) for tensor in batch)
    pixels, targets = augment_batch(images, masks, RECIPES[recipe_name(args)], out_size)
    inputs = prep.normalise(pixels).contiguous(memory_format=memory_format(args.device))
    device_type = "cuda" if args.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        logits = model(inputs)
    loss = dice_bce_loss(logits.float(), targets)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.item()


def recipe_name(args: argparse.Namespace) -> str:
    return args.augment or ("synthetic" if args.data == "synthetic" else "photos")


@torch.no_grad()
def validate(model: UNet, loader: DataLoader, device: str, prep: Preprocessing) -> dict[str, float]:
    model.eval()
    meter = OverlapMeter()
    for images, masks in loader:
        logits = model(prep.normalise(images.to(device)))
        meter.update(logits > 0, masks.to(device) > 0.5)  # logit 0 == probability 0.5
    return {"iou": round(meter.iou, 5), "dice": round(meter.dice, 5)}


def save_checkpoint(
    path: Path, model: UNet, optimiser: torch.optim.Optimizer, progress: Progress, extra: dict[str, Any]
) -> None:
    state = {
        "model": model.state_dict(),
        "config": model.config.to_dict(),
        "optimizer": optimiser.state_dict(),
        "step": progress.step,
        "epoch": progress.epoch,
        "rng": torch.get_rng_state(),  # a resumed run draws the augmentations it would have drawn
        **extra,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


@dataclass
class Run:
    """What one training run works with, built once by ``main``."""

    args: argparse.Namespace
    prep: Preprocessing
    model: UNet
    optimiser: torch.optim.Optimizer
    progress: Progress
    extra: dict[str, Any]  # saved with every checkpoint: preprocessing, data description, arguments


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = args.device.startswith("cuda")  # fixed input size: autotune once
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()  # --max-minutes bounds the whole run, data preparation included
    max_seconds = args.max_minutes * 60 if args.max_minutes else None

    # 1. data: at most half the time budget, so training always gets the other half
    prep = Preprocessing(height=args.image_size, width=args.image_size)
    data_deadline = started + max_seconds * DATA_BUDGET_FRACTION if max_seconds else None
    train_set, val_set, data_description = build_datasets(args, prep, data_deadline)
    train_loader, val_loader = make_loader(train_set, args, True), make_loader(val_set, args, False)

    # 2. model and optimiser (optionally resumed)
    resumed = torch.load(args.resume, map_location="cpu", weights_only=False) if args.resume else None
    config = UNetConfig.from_dict(resumed["config"]) if resumed else UNetConfig(base_width=args.base_width)
    model = UNet(config).to(args.device, memory_format=memory_format(args.device))  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=WEIGHT_DECAY)
    progress = Progress(total_steps=args.epochs * len(train_loader), max_seconds=max_seconds)
    best_iou = restore(resumed, model, optimiser, progress)
    log.info("UNet %s: %d parameters on %s", config, count_parameters(model), args.device)
    log.info("%d train / %d validation images: %s", len(train_set), len(val_set), data_description)

    # 3. train, validating and checkpointing each epoch
    extra = {
        "preprocessing": prep.to_dict(),
        "data": data_description,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    progress.started = started - (resumed or {}).get("elapsed", 0.0)
    best_iou = run_epochs(Run(args, prep, model, optimiser, progress, extra), train_loader, val_loader, best_iou)
    log.info("done: best validation IoU %.4f; checkpoints in %s", best_iou, args.out)


def run_epochs(run: Run, train_loader: DataLoader, val_loader: DataLoader, best_iou: float) -> float:
    args, progress = run.args, run.progress
    first_epoch = progress.epoch
    # At least one epoch (train_epoch stops after one step once time is up), so a run always leaves a checkpoint.
    while progress.epoch < args.epochs and (progress.fraction < 1.0 or progress.epoch == first_epoch):
        loss = train_epoch(run.model, train_loader, run.optimiser, progress, args, run.prep)
        progress.epoch += 1
        metrics = validate(run.model, val_loader, args.device, run.prep) if due_for_validation(args, progress) else {}
        elapsed = time.monotonic() - progress.started
        log.info("epoch %d step %d loss %.4f val %s (%.0f s)", progress.epoch, progress.step, loss, metrics, elapsed)
        is_best = bool(metrics) and metrics["iou"] >= best_iou
        best_iou = max(best_iou, metrics.get("iou", best_iou))
        if metrics:
            record_epoch(args.out / "history.jsonl", progress, loss, metrics, elapsed)
        extra = {**run.extra, "metrics": metrics, "elapsed": elapsed, "best_iou": best_iou}
        save_checkpoint(args.out / "last.pt", run.model, run.optimiser, progress, extra)
        if is_best:
            save_checkpoint(args.out / "best.pt", run.model, run.optimiser, progress, extra)
        if args.max_steps and progress.step >= args.max_steps:
            break
    return best_iou


def due_for_validation(args: argparse.Namespace, progress: Progress) -> bool:
    """Every epoch on whole frames; every ``--val-every`` epochs of the crop phase (its epochs are short)."""
    last = progress.fraction >= 1.0 or progress.epoch >= args.epochs
    in_crop_phase = crop_side(args, progress.fraction) is not None
    return last or not in_crop_phase or progress.epoch % args.val_every == 0


def record_epoch(path: Path, progress: Progress, loss: float, metrics: dict[str, float], elapsed: float) -> None:
    """One JSON line per epoch: the learning curve, kept across resumed runs."""
    row = {"epoch": progress.epoch, "step": progress.step, "loss": round(loss, 5), **metrics}
    with path.open("a") as history:
        history.write(json.dumps({**row, "fraction": round(progress.fraction, 4), "seconds": round(elapsed)}) + "\n")


def restore(resumed: dict[str, Any] | None, model: UNet, optimiser: torch.optim.Optimizer, progress: Progress) -> float:
    if not resumed:
        return -1.0
    model.load_state_dict(resumed["model"])
    optimiser.load_state_dict(resumed["optimizer"])
    progress.step, progress.epoch = resumed["step"], resumed["epoch"]
    if "rng" in resumed:
        torch.set_rng_state(resumed["rng"])
    return float(resumed.get("best_iou", -1.0))


if __name__ == "__main__":
    main()
