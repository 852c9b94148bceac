"""`pip install .`: the service package `app` and the bundled model install from the checkout's pyproject."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import DEFAULT_MODEL, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel `pip install .` builds (no network: the venv's own setuptools builds it)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(out)], cwd=REPO, check=True, capture_output=True, timeout=300)
    [built] = out.glob("unet_segmentation_service-*.whl")
    return zipfile.ZipFile(built)


def test_the_runtime_package_installs_with_every_layer(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    source = REPO / "function"
    expected = {path.relative_to(source).as_posix() for path in (source / "app").rglob("*.py")}
    assert expected <= names
    assert not any(name.startswith(("model/", "tests/", "bench/", "scripts/")) for name in names)  # no torch side


def test_the_command_line_installs_as_a_console_script(wheel: zipfile.ZipFile) -> None:
    [entry_points] = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    assert wheel.read(entry_points).decode().split() == ["[console_scripts]", "unet-segment", "=", "app.cli:main"]


def test_the_package_data_installs_with_it(wheel: zipfile.ZipFile) -> None:
    """Files that are not Python (the page at /ui) are in the wheel too: pyproject's package-data names them."""
    source = REPO / "function"
    data = {path.relative_to(source).as_posix() for path in (source / "app").rglob("*")
            if path.is_file() and path.suffix not in {".py", ".pyc"} and "model" not in path.parts}
    assert "app/http/ui/index.html" in data  # the test cannot pass on an empty set
    assert data <= set(wheel.namelist())


def test_the_bundled_model_installs_where_settings_look_for_it(wheel: zipfile.ZipFile) -> None:
    [model] = [name for name in wheel.namelist() if name.endswith("share/unet-segmentation/unet-int8.onnx")]
    assert wheel.getinfo(model).file_size == DEFAULT_MODEL.stat().st_size


def test_dependencies_are_the_pinned_runtime_requirements(wheel: zipfile.ZipFile) -> None:
    [metadata] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    requires = {line.removeprefix("Requires-Dist: ").strip() for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist: ")}
    pinned = {line.split("#")[0].strip() for line in (REPO / "function" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert requires == pinned
    assert not any(name.lower().startswith("torch") for name in requires)


def test_the_checkout_is_installed_editable_into_the_venv() -> None:
    """One import path: `app` resolves to this checkout's function/app, with no sys.path edits anywhere."""
    import app

    assert Path(app.__file__).resolve() == REPO / "function" / "app" / "__init__.py"
    offenders = [path for path in REPO.glob("**/*.py") if ".venv" not in path.parts
                 and "sys.path.insert" in path.read_text() and path.name != Path(__file__).name]
    assert offenders == []
