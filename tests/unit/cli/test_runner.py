"""app.cli.runner's parts that must hold whatever stops a run: atomic writes, and waiting for the files in progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli.runner import finish, write_atomically


def test_a_write_replaces_the_target_whole(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "cat.jpg.png"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["cat.jpg.png"]
    assert target.read_bytes() == b"second"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError("No space left on device")])
def test_a_write_stopped_before_the_rename_leaves_the_old_target_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException | type[BaseException]
) -> None:
    target = tmp_path / "cat.jpg.png"
    target.write_bytes(b"old")

    def fail(*_: Any) -> None:
        raise stop

    monkeypatch.setattr("app.cli.runner.os.replace", fail)
    with pytest.raises(type(stop) if isinstance(stop, BaseException) else stop):
        write_atomically(target, b"new")
    assert [path.name for path in tmp_path.iterdir()] == ["cat.jpg.png"]
    assert target.read_bytes() == b"old"


class Pool:
    """A thread pool whose first wait is interrupted by Ctrl-C."""

    def __init__(self) -> None:
        self.calls: list[dict[str, bool]] = []

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.calls.append({"wait": wait, "cancel_futures": cancel_futures})
        if len(self.calls) == 1:
            raise KeyboardInterrupt


def test_another_ctrl_c_does_not_cut_the_files_in_progress_short() -> None:
    pool = Pool()
    finish(pool)  # type: ignore[arg-type]
    assert pool.calls == [{"wait": True, "cancel_futures": True}] * 2
