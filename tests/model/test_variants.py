"""The derived test sets carry their labels exactly: crop, pair, shrink and darken move pixels and truth alike."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.scoring import LabelledPhoto
from model.variants import VARIANTS, dark, pairs, small, upper_body


def photo(name: str, width: int, height: int) -> LabelledPhoto:
    """White where the person is (the right half), black elsewhere."""
    truth = np.zeros((height, width), dtype=bool)
    truth[:, width // 2 :] = True
    pixels = np.where(truth[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    return LabelledPhoto(name, Image.fromarray(pixels), truth)


def white_is_truth(item: LabelledPhoto) -> bool:
    white = np.asarray(item.photo)[..., 0] > 127
    return item.photo.size == item.truth.shape[::-1] and bool((white == item.truth).all())


def test_upper_body_keeps_the_top_45_percent() -> None:
    [item] = upper_body(photo("a", 10, 20))
    assert item.photo.size == (10, 9) and white_is_truth(item)


def test_pairs_join_two_photos_at_the_first_ones_height() -> None:
    joined = pairs([photo("a", 10, 20), photo("b", 5, 10), photo("c", 4, 4)])
    assert [item.name for item in joined] == ["a+b"]  # an odd photo out is left alone
    item = joined[0]
    assert item.photo.size == (20, 20) and item.truth.shape == (20, 20)
    assert (item.truth[:, :10] == photo("a", 10, 20).truth).all()  # the first photo unchanged
    # the second scaled 2x: its 3 person columns of 5 become 6 of 10 (nearest), its pixels bilinear around them
    assert item.truth[:, 10:].sum(axis=1).tolist() == [6] * 20
    assert ((np.asarray(item.photo)[..., 0] > 127) == item.truth).mean() >= 0.95


def test_small_puts_the_photo_in_the_middle_third_of_its_own_edges() -> None:
    [item] = small(photo("a", 10, 20))
    assert item.truth.shape == (60, 30) and item.truth.sum() == 10 * 20 // 2
    assert item.truth[20:40, 15:20].all() and not item.truth[:20].any()


def test_dark_keeps_the_truth_and_dims_the_pixels() -> None:
    original = photo("a", 10, 20)
    [item] = dark(original)
    assert item.truth is original.truth and np.asarray(item.photo).max() == 85


def test_every_variant_keeps_each_photo_paired_with_its_truth() -> None:
    photos = [photo("a", 10, 20), photo("b", 12, 20)]
    for name, derive in VARIANTS.items():
        assert all(item.photo.size == item.truth.shape[::-1] for item in derive(photos)), name
