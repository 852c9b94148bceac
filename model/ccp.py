"""Clothing Co-Parsing (CCP): real street photos of one person each, read as person vs background.

    python -m model.ccp ../shared/datasets/clothing-co-parsing --out data/ccp   # -> data/ccp/{train,val,test}

Reads the layout of the public repository github.com/bearpaw/clothing-co-parsing (Apache-2.0)
directly, from ``../shared/datasets/clothing-co-parsing`` or from any clone of it:
``photos/NNNN.jpg`` beside ``annotations/pixel-level/NNNN.mat``, a MATLAB file whose one
variable ``groundtruth`` is a uint8 label image of the photo's size. Label 0 is background,
1-58 are skin, hair and garments: **the person is every pixel whose label is not 0.**
Only the photos with pixel-level labels are used (1,004 of the repository's 2,098; the
others carry image-level tags only).

The split is fixed: the annotated stems, sorted, shuffled by ``SPLIT_SEED``, then the first
``VAL_SIZE`` are validation, the next ``TEST_SIZE`` test and the rest training (804 photos
-> 644 / 80 / 80). ``--out`` writes each part as ``images/`` (the photos' own JPEG bytes)
and ``masks/`` (0/255 PNGs), the folder layout that ``model.train --data`` and
``model.evaluate --data`` take for any data set. Reading ``.mat`` needs scipy: a
training-side dependency, never in ``function/``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from model.datasets import SegmentationDataset
from model.preprocessing import Preprocessing

log = logging.getLogger("model.ccp")

PHOTOS = Path("photos")
LABELS = Path("annotations/pixel-level")
LABEL_VARIABLE = "groundtruth"  # the one variable of each pixel-level .mat
BACKGROUND_LABEL = 0  # label_list.mat's "null"; 1-58 are skin, hair and garments
SPLIT_SEED = 2014  # the data set's year (CVPR 2014); changing it changes every reported figure
VAL_SIZE = 80  # chooses the checkpoint and the threshold
TEST_SIZE = 80  # every reported figure; never seen in training or model selection
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One annotated photo of the data set."""

    stem: str
    photo: Path
    labels: Path


def is_ccp_root(root: Path) -> bool:
    return (root / PHOTOS).is_dir() and (root / LABELS).is_dir()


def annotated_samples(root: Path) -> list[Sample]:
    """Every photo with pixel-level labels, by stem; a label file without its photo is an error."""
    if not is_ccp_root(root):
        raise ValueError(f"{root} is not a Clothing Co-Parsing folder: expected {PHOTOS}/ and {LABELS}/ in it")
    samples = []
    for labels in sorted((root / LABELS).glob("*.mat")):
        photo = root / PHOTOS / f"{labels.stem}.jpg"
        if not photo.is_file():
            raise ValueError(f"{labels} has no photo: expected {photo}")
        samples.append(Sample(labels.stem, photo, labels))
    if not samples:
        raise ValueError(f"no pixel-level labels under {root / LABELS}: expected NNNN.mat files")
    return samples


def read_person_mask(labels: Path) -> np.ndarray:
    """The boolean person mask of one ``.mat``: every pixel whose label is not background."""
    if not labels.is_file():
        raise ValueError(f"no pixel-level labels at {labels}: this photo is not annotated")
    variables = scipy.io.loadmat(labels)
    if LABEL_VARIABLE not in variables:
        found = sorted(k for k in variables if not k.startswith("__"))
        raise ValueError(f"{labels} holds no '{LABEL_VARIABLE}' label image (it holds {found})")
    label_image = np.asarray(variables[LABEL_VARIABLE])
    if label_image.ndim != 2:
        raise ValueError(f"{labels}: '{LABEL_VARIABLE}' is {label_image.shape}, not a 2-D label image")
    return label_image != BACKGROUND_LABEL


def load_sample(sample: Sample) -> tuple[Image.Image, np.ndarray]:
    """(RGB photo, boolean person mask of the same size); a size mismatch is an error."""
    mask = read_person_mask(sample.labels)
    with Image.open(sample.photo) as photo:
        rgb = photo.convert("RGB")
    if mask.shape != (rgb.height, rgb.width):
        labels_size = f"{mask.shape[1]}x{mask.shape[0]}"
        raise ValueError(f"{sample.labels}: labels are {labels_size} but {sample.photo} is {rgb.width}x{rgb.height}")
    return rgb, mask


def split(samples: list[Sample], seed: int = SPLIT_SEED) -> dict[str, list[Sample]]:
    """The fixed train / val / test parts: a seeded shuffle of the sorted stems."""
    if len(samples) <= VAL_SIZE + TEST_SIZE:
        raise ValueError(f"{len(samples)} annotated photos: need more than {VAL_SIZE + TEST_SIZE} to split")
    order = np.random.default_rng(seed).permutation(len(samples))
    shuffled = [sorted(samples, key=lambda s: s.stem)[i] for i in order]
    parts = {"val": shuffled[:VAL_SIZE], "test": shuffled[VAL_SIZE : VAL_SIZE + TEST_SIZE]}
    parts["train"] = shuffled[VAL_SIZE + TEST_SIZE :]
    return {name: sorted(parts[name], key=lambda s: s.stem) for name in PARTS}


class CCPDataset(SegmentationDataset):
    """One part of the split, read straight from the repository's layout."""

    def __init__(self, root: Path, part: str, preprocessing: Preprocessing) -> None:
        super().__init__(preprocessing, seed=SPLIT_SEED)
        self.samples = split(annotated_samples(root))[part]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        return load_sample(self.samples[index])


def write_part(samples: list[Sample], out: Path) -> None:
    """``out/images/NNNN.jpg`` (the photo's own bytes) and ``out/masks/NNNN.png`` (0/255)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for sample in samples:
        _, mask = load_sample(sample)  # checks the labels against the photo's size
        shutil.copyfile(sample.photo, out / "images" / sample.photo.name)
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{sample.stem}.png", optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a Clothing Co-Parsing folder (photos/, annotations/pixel-level/)")
    parser.add_argument("--out", type=Path, required=True, help="writes train/, val/ and test/ here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        parts = split(annotated_samples(args.root))
    except ValueError as error:
        parser.exit(2, f"model.ccp: {error}\n")
    for name, samples in parts.items():
        write_part(samples, args.out / name)
        log.info("%s: %d photos -> %s", name, len(samples), args.out / name)


if __name__ == "__main__":
    main()
