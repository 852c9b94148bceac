"""What ``unet-segment`` reads and where each result goes: files, folders and globs -> (source, output) pairs.

Each input is named by its path relative to the folder it was found in, and its
output is that name with the result's suffix under the output folder
(``app.core.naming``): ``photos/a/cat.jpg`` given as ``photos`` -> ``OUT/a/cat.jpg.png``.

- A file named on the command line is always attempted (whatever its extension), and
  named by its file name: ``photos/a/cat.jpg`` -> ``OUT/cat.jpg.png``.
- A folder contributes the files in it whose extension is an accepted format's
  (``IMAGE_SUFFIXES``: Pillow's extensions for ``app.core.decoding.imaging.ALLOWED_FORMATS``),
  its subfolders' too with ``recursive``; other files are reported as ignored. The
  output folder, if it lies inside, is never read: a rerun does not feed on its results.
- A glob (``'photos/**/*.jpg'``, quoted so the shell leaves it) expands as the shell would
  (``**`` crosses folders), each match named relative to the folder before the first
  wildcard, so ``photos/a/cat.jpg`` -> ``OUT/a/cat.jpg.png``.

A path found twice is read once; two different sources that would write the same
output are refused before anything runs (``UsageError``), as are paths that do not exist.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from PIL import Image

from app.core.decoding.imaging import ALLOWED_FORMATS
from app.core.naming import result_name
from app.core.options import RenderOptions

IMAGE_SUFFIXES = frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in ALLOWED_FORMATS)
GLOB_CHARACTERS = frozenset("*?[")


class UsageError(Exception):
    """An input that cannot be read as asked, or two inputs that would write the same output: exit status 2."""


@dataclass(frozen=True)
class Source:
    """A file to segment and its name: its path relative to the folder it was given in."""

    path: Path
    name: PurePath


@dataclass(frozen=True)
class Job:
    """A source and the file its result is written to."""

    source: Source
    target: Path


@dataclass(frozen=True)
class Found:
    """What the inputs name: the sources, in order, and the files in folders that are not images."""

    sources: list[Source]
    ignored: list[Path]


def find_sources(inputs: list[str], recursive: bool, out_dir: Path) -> Found:
    """Every input's sources (each path once, first naming wins) and what its folders held that is not an image."""
    sources: dict[Path, Source] = {}
    ignored: list[Path] = []
    for argument in inputs:
        for source in expand(argument, recursive, out_dir.resolve(), ignored):
            sources.setdefault(source.path.resolve(), source)
    return Found(list(sources.values()), ignored)


def expand(argument: str, recursive: bool, out_dir: Path, ignored: list[Path]) -> Iterator[Source]:
    path = Path(argument)
    if path.is_dir():
        yield from folder_sources(path, recursive, out_dir, ignored)
    elif path.is_file():
        yield Source(path, PurePath(path.name))
    elif GLOB_CHARACTERS & set(argument):
        yield from glob_sources(argument, recursive, out_dir, ignored)
    else:
        raise UsageError(f"{argument}: no such file or folder")


def folder_sources(folder: Path, recursive: bool, out_dir: Path, ignored: list[Path]) -> Iterator[Source]:
    """The folder's images (its subfolders' too if ``recursive``) in name order; the rest goes to ``ignored``."""
    for root, folders, files in os.walk(folder):  # symlinked folders are not followed: no loops
        folders[:] = sorted(name for name in folders if recursive and (Path(root) / name).resolve() != out_dir)
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield Source(path, path.relative_to(folder))
            else:
                ignored.append(path)


def glob_sources(pattern: str, recursive: bool, out_dir: Path, ignored: list[Path]) -> Iterator[Source]:
    """What the shell would have passed, named relative to the folder before the first wildcard."""
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise UsageError(f"{pattern}: matches no file or folder")
    base = glob_base(pattern)
    for match in map(Path, matches):
        if match.is_dir():
            yield from folder_sources(match, recursive, out_dir, ignored)
        else:
            yield Source(match, match.relative_to(base))


def glob_base(pattern: str) -> Path:
    """The folder before the first wildcard: ``photos/**/*.jpg`` -> ``photos``."""
    fixed: list[str] = []
    for part in PurePath(pattern).parts:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return Path(*fixed)


def plan(sources: list[Source], out_dir: Path, options: RenderOptions) -> list[Job]:
    """Each source with its output file; refuses two sources that would write the same one."""
    jobs: dict[Path, Job] = {}
    for source in sources:
        target = out_dir / result_name(source.name.as_posix(), options)
        if target in jobs:
            raise UsageError(f"{jobs[target].source.path} and {source.path} would both be written to {target}: give "
                             "the folder that holds both (with --recursive), so each keeps its own subfolder")
        jobs[target] = Job(source, target)
    return list(jobs.values())
