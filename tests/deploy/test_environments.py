"""The venv's stamps: each verb installs what it runs. The AWS verbs never install torch; the verbs marked (torch) in
make help install it, the CPU-only build where no NVIDIA GPU is found; the dev verbs install everything."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import REPO

AWS_VERBS = ["invoke", "serve-local", "lambda-size", "lambda-memory", "publish-model"]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCAL_PACKAGES = {"app", "scripts", "model", "bench", "fuzz", "tests"}  # the checkout's own, never a requirement
# What each requirements file must install: the third-party imports of the code its verbs run.
SOURCES = {
    "requirements-aws.txt": ["scripts/invoke.py", "scripts/serve_local.py", "scripts/lambda_size.py",
                             "scripts/lambda_memory.py", "scripts/publish_model.py", "scripts/local_s3.py"],
    "requirements-torch.txt": sorted(path.relative_to(REPO).as_posix() for path in (REPO / "model").glob("*.py")),
}


def plan(*arguments: str, venv: Path, env: dict[str, str] | None = None) -> list[str]:
    """What make would run for a venv that does not exist yet: every stamp's install included."""
    done = subprocess.run([shutil.which("make") or "make", "-n", "--no-print-directory", f"VENV={venv}",
                           f"GPU_VENV={venv}-gpu", *arguments], cwd=REPO, capture_output=True, text=True,
                          env=env, check=True, timeout=60)
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def installs_torch(lines: list[str]) -> bool:
    return any("requirements-torch.txt" in line or '"torch==' in line for line in lines)


def help_lines() -> dict[str, str]:
    done = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    return {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("  make ")}


@pytest.mark.parametrize("verb", AWS_VERBS)
def test_the_aws_verbs_install_moto_and_never_torch(verb: str, tmp_path: Path) -> None:
    lines = plan(verb, venv=tmp_path / "venv")
    assert any(line.endswith("-m pip install --quiet --disable-pip-version-check -r requirements-aws.txt")
               for line in lines), lines
    assert not installs_torch(lines), lines
    assert not any("requirements-dev.txt" in line for line in lines), lines
    assert "(torch)" not in help_lines()[verb]


def test_make_help_marks_every_verb_that_installs_torch(tmp_path: Path) -> None:
    """(torch) in make help is exactly the verbs that install torch but not the whole dev stack."""
    marked, installing, dev = set(), set(), set()
    for verb, line in help_lines().items():
        lines = plan(verb, venv=tmp_path / "venv")
        marked |= {verb} if "(torch)" in line else set()
        installing |= {verb} if installs_torch(lines) else set()
        dev |= {verb} if any("-r requirements-dev.txt" in line for line in lines) else set()
    assert {"train", "train-person", "export", "evaluate", "ensemble", "quantize", "data"} <= marked
    assert marked == installing - dev
    assert {"test", "check", "lint"} <= dev <= installing  # the dev stack is everything, torch included


def fake_path(tmp_path: Path, *, gpu: bool) -> dict[str, str]:
    """A PATH with grep (the Makefile reads the torch pin with it) and, for a GPU machine, an nvidia-smi."""
    bin_dir = tmp_path / ("gpu-bin" if gpu else "cpu-bin")
    bin_dir.mkdir()
    (bin_dir / "grep").symlink_to(shutil.which("grep") or "/usr/bin/grep")
    if gpu:
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    return {**{k: v for k, v in os.environ.items() if k != "TORCH_INDEX"}, "PATH": str(bin_dir)}


def torch_line(lines: list[str]) -> str:
    [line] = [line for line in lines if '"torch==' in line]
    return line


@pytest.mark.parametrize(("gpu", "override", "index"), [
    (False, None, CPU_INDEX),
    (True, None, None),
    (False, "TORCH_INDEX=", None),
    (True, "TORCH_INDEX=file:///srv/wheels", "file:///srv/wheels"),
], ids=["no-gpu", "gpu", "no-gpu-pip-index", "gpu-own-index"])
def test_torch_comes_from_the_cpu_index_where_no_gpu_is_found(tmp_path: Path, gpu: bool, override: str | None,
                                                              index: str | None) -> None:
    pin = re.search(r"^torch==\S+", (REPO / "requirements-torch.txt").read_text(), re.MULTILINE)
    assert pin is not None
    line = torch_line(plan("train", *([override] if override else []), venv=tmp_path / "venv",
                           env=fake_path(tmp_path, gpu=gpu)))
    # the torch line alone, without its dependencies: the index serves torch only, pip's own index the rest
    expected_index = f" --index-url {index}" if index else ""
    assert line.endswith(f"-m pip install --quiet --disable-pip-version-check --no-deps --retries 2{expected_index} "
                         f'"{pin.group()}"')


def test_the_torch_line_comes_before_the_rest_of_the_torch_side(tmp_path: Path) -> None:
    lines = plan("train", venv=tmp_path / "venv")
    torch_at = lines.index(torch_line(lines))
    [rest_at] = [index for index, line in enumerate(lines) if line.endswith("-r requirements-torch.txt")]
    assert torch_at < rest_at


def requirement_lines(name: str, read: set[str] | None = None) -> Iterator[tuple[str, str]]:
    """(file, requirement) for every requirement the file installs, through its -r includes, each file read once."""
    read = set() if read is None else read
    read.add(name)
    for raw in (REPO / name).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line.startswith("-r ") and line.removeprefix("-r ").strip() not in read:
            yield from requirement_lines(line.removeprefix("-r ").strip(), read)
        elif line and not line.startswith("-r "):
            yield name, line


def test_every_dev_requirement_is_listed_once() -> None:
    listed = list(requirement_lines("requirements-dev.txt"))
    names = [canonicalize_name(Requirement(line).name) for _, line in listed]
    assert {file for file, _ in listed} == {"requirements-dev.txt", "requirements-aws.txt", "requirements-torch.txt",
                                             "requirements-serve.txt", "function/requirements.txt"}
    assert len(names) == len(set(names)), sorted({name for name in names if names.count(name) > 1})
    assert all(str(Requirement(line).specifier).startswith("==") for _, line in listed)  # every one pinned


def test_torch_is_in_the_torch_file_only() -> None:
    for name in ("requirements-serve.txt", "requirements-aws.txt", "requirements-dev.txt", "requirements-torch.txt"):
        own = [line for file, line in requirement_lines(name) if file == name]
        assert any(Requirement(line).name == "torch" for line in own) == (name == "requirements-torch.txt")
    assert not any(Requirement(line).name == "torch" for _, line in requirement_lines("requirements-aws.txt"))


def distributions(name: str) -> set[str]:
    """The distributions the file installs, their dependencies (with the extras asked for) included."""
    todo = [Requirement(line) for _, line in requirement_lines(name)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:  # not for this platform: its marker said so
            continue
        for line in requires:
            needed = Requirement(line)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(needed)
    return {name for name, _ in seen}


def third_party_imports(path: Path) -> set[str]:
    """Every top-level module the file imports, at module level or inside a function, but its own."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - LOCAL_PACKAGES


@pytest.mark.parametrize("requirements", SOURCES)
def test_each_stamp_installs_what_its_verbs_import(requirements: str) -> None:
    installed = distributions(requirements)
    owners = metadata.packages_distributions()
    missing = {(source, module) for source in SOURCES[requirements] for module in third_party_imports(REPO / source)
               if not {canonicalize_name(owner) for owner in owners.get(module, [module])} & installed}
    assert not missing, f"imported, but not installed by {requirements}: {sorted(missing)}"
    assert ("torch" in installed) == (requirements == "requirements-torch.txt")
