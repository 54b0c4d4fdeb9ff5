"""An input's result folder as a transaction: written under a hidden ``.partial`` name, moved into
place only when complete, removed on failure. A result folder is therefore complete or absent."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import UsageError

log = logging.getLogger(__name__)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to a temporary name, then rename it into place (readers never see half a file).

    Lone surrogates (undecodable bytes of a file name) are written as ``\\udcXX`` escapes, which is
    still valid JSON.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8", "backslashreplace"))
    os.replace(tmp, path)


def partial_dir(final_dir: Path) -> Path:
    """The hidden name an input's folder is written under until it is complete."""
    return final_dir.with_name(f".{final_dir.name}.partial")


def is_result_folder(path: Path) -> bool:
    """Whether ``path`` is a result folder a SOWLv2 run wrote (it holds a results.json)."""
    return path.is_dir() and (path / "results.json").is_file()


def check_replaceable(final_dir: Path) -> None:
    """Raise UsageError if ``final_dir`` exists and is not a SOWLv2 result folder: a run replaces
    only its own results and never deletes anything else."""
    if (final_dir.exists() or final_dir.is_symlink()) and (final_dir.is_symlink() or not is_result_folder(final_dir)):
        raise UsageError(f"output: {final_dir} exists and is not a SOWLv2 result folder (no results.json); "
                         "it is left alone: move it away or choose another --output")


class ResultFolder:
    """The ``.partial`` folder of one input, committed (renamed into place) or aborted (removed).

    Example:
        >>> with ResultFolder(out_root / "clip") as folder:
        ...     (folder.dir / "results.json").write_text("...")
        ...     folder.commit()          # without it, leaving the block removes the folder

    Args:
        final_dir: ``OUTPUT/<input name>``; must be absent or a SOWLv2 result folder (replaced only
            at ``commit``, ``--overwrite``).
    """

    def __init__(self, final_dir: Path) -> None:
        from .inputs import result_name

        self.final_dir = Path(final_dir)
        if result_name(self.final_dir.name) != self.final_dir.name:
            raise ValueError(f"{self.final_dir.name!r} is not a safe result-folder name (see io.inputs.result_name)")
        check_replaceable(self.final_dir)
        self.dir = partial_dir(self.final_dir)
        if self.dir.exists():
            shutil.rmtree(self.dir)  # our own leftovers from an interrupted run
        self.dir.mkdir(parents=True)
        self.committed = False

    def commit(self) -> Path:
        """Move the folder into place (replacing an older result of the same input). Returns it."""
        if self.final_dir.exists() or self.final_dir.is_symlink():
            check_replaceable(self.final_dir)
            shutil.rmtree(self.final_dir)  # --overwrite: replaced only once the new one is complete
        os.replace(self.dir, self.final_dir)
        self.committed = True
        return self.final_dir

    def abort(self) -> None:
        """Remove everything written (it never reaches its final name)."""
        if not self.committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ResultFolder:
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            self.abort()
