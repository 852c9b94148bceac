"""The Clothing Co-Parsing reader: labels to person/background, the fixed split, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from model.ccp import (
    TEST_SIZE,
    VAL_SIZE,
    annotated_samples,
    load_sample,
    main,
    read_person_mask,
    split,
)
from model.scoring import labelled_photos


def write_photo(root: Path, stem: str, size: tuple[int, int] = (6, 4)) -> None:
    (root / "photos").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(root / "photos" / f"{stem}.jpg")


def write_labels(root: Path, stem: str, labels: np.ndarray, variable: str = "groundtruth") -> Path:
    folder = root / "annotations" / "pixel-level"
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{stem}.mat", {variable: labels.astype(np.uint8)})
    return folder / f"{stem}.mat"


def fake_ccp(root: Path, count: int) -> Path:
    """``count`` annotated 6x4 photos, person in the left half, plus one photo without labels."""
    labels = np.zeros((4, 6), dtype=np.uint8)
    labels[:, :3] = 41
    for index in range(count):
        write_photo(root, f"{index + 1:04d}")
        write_labels(root, f"{index + 1:04d}", labels)
    write_photo(root, "9999")  # image-level tags only in the repository: not part of the data set
    return root


# Every label but 0 (background) is the person: skin, hair and each of the garments up to 58.
@pytest.mark.parametrize(("label", "is_person"), [(0, False), (1, True), (19, True), (41, True), (58, True)])
def test_every_label_but_background_is_the_person(tmp_path: Path, label: int, is_person: bool) -> None:
    labels = np.full((3, 5), label, dtype=np.uint8)
    labels[0, 0] = 0
    mask = read_person_mask(write_labels(tmp_path, "0001", labels))
    assert mask.dtype == bool and mask.shape == (3, 5)
    assert mask[0, 0] == False  # noqa: E712 - numpy bool
    assert mask.sum() == (14 if is_person else 0)


def test_a_mat_without_groundtruth_says_what_it_holds(tmp_path: Path) -> None:
    path = write_labels(tmp_path, "0001", np.zeros((2, 2)), variable="labels")
    with pytest.raises(ValueError, match=r"holds no 'groundtruth' label image \(it holds \['labels'\]\)"):
        read_person_mask(path)


def test_a_photo_without_labels_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no pixel-level labels at .*0005.mat: this photo is not annotated"):
        read_person_mask(tmp_path / "annotations" / "pixel-level" / "0005.mat")


def test_labels_of_another_size_than_the_photo_are_an_error(tmp_path: Path) -> None:
    write_photo(tmp_path, "0001", size=(6, 4))
    write_labels(tmp_path, "0001", np.zeros((5, 6)))
    (sample,) = annotated_samples(tmp_path)
    with pytest.raises(ValueError, match=r"labels are 6x5 but .*0001.jpg is 6x4"):
        load_sample(sample)


def test_labels_without_their_photo_are_an_error(tmp_path: Path) -> None:
    write_photo(tmp_path, "0001")
    write_labels(tmp_path, "0002", np.zeros((4, 6)))
    with pytest.raises(ValueError, match=r"0002.mat has no photo: expected .*photos/0002.jpg"):
        annotated_samples(tmp_path)


def test_a_folder_of_another_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a Clothing Co-Parsing folder: expected photos/ and"):
        annotated_samples(tmp_path)


def test_only_photos_with_pixel_labels_are_samples(tmp_path: Path) -> None:
    samples = annotated_samples(fake_ccp(tmp_path, 3))
    assert [s.stem for s in samples] == ["0001", "0002", "0003"]
    photo, mask = load_sample(samples[0])
    assert photo.size == (6, 4) and mask[:, :3].all() and not mask[:, 3:].any()


def test_the_split_is_fixed_disjoint_and_complete(tmp_path: Path) -> None:
    samples = annotated_samples(fake_ccp(tmp_path, 200))
    parts = split(samples)
    assert [len(parts[name]) for name in ("train", "val", "test")] == [200 - VAL_SIZE - TEST_SIZE, VAL_SIZE, TEST_SIZE]
    stems = [{s.stem for s in parts[name]} for name in ("train", "val", "test")]
    assert set.union(*stems) == {s.stem for s in samples} and sum(map(len, stems)) == 200
    # the same seed gives the same parts whatever order the files were listed in
    assert split(list(reversed(samples))) == parts
    assert split(samples, seed=1) != parts


def test_too_few_photos_to_split_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"10 annotated photos: need more than {VAL_SIZE + TEST_SIZE}"):
        split(annotated_samples(fake_ccp(tmp_path, 10)))


def test_conversion_writes_the_folder_layout_every_data_set_uses(tmp_path: Path) -> None:
    # GIVEN a CCP folder WHEN converted THEN each part is images/ + masks/ that the folder reader pairs
    main([str(fake_ccp(tmp_path / "ccp", 170)), "--out", str(tmp_path / "out")])
    for name, count in (("train", 170 - VAL_SIZE - TEST_SIZE), ("val", VAL_SIZE), ("test", TEST_SIZE)):
        photos = labelled_photos(tmp_path / "out" / name)
        assert len(photos) == count
        assert all(p.truth[:, :3].all() and not p.truth[:, 3:].any() for p in photos)
    original = (tmp_path / "ccp" / "photos" / f"{photos[0].name}.jpg").read_bytes()
    assert (tmp_path / "out" / "test" / "images" / f"{photos[0].name}.jpg").read_bytes() == original


def test_converting_a_wrong_folder_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "is not a Clothing Co-Parsing folder" in capsys.readouterr().err
