"""Run folders as Ultralytics lays them out: ``runs/<task>/<name>``, made unique.

``runs/segment/train``, then ``train2``, ``train3``, ... for the next runs of the same name
(``exist_ok`` reuses the folder as it is). Training writes ``weights/best.pt`` and
``weights/last.pt`` there, evaluation and prediction write their files the same way under
``runs/<task>/val`` and ``runs/<task>/predict``.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Optional

TASK_FOLDERS = {"seg": "segment", "det": "detect"}


def default_project(task: str) -> Path:
    """``runs/segment`` or ``runs/detect``."""
    return Path("runs") / TASK_FOLDERS[task]


def new_run_folder(project: str | Path, name: str, exist_ok: bool = False) -> Path:
    """Create and return ``project/name``, or ``project/name2``, ``name3``, ... if taken.

    With ``exist_ok`` the folder ``project/name`` is used whether or not it exists. The
    folder is created here (``mkdir`` without ``exist_ok``), so two processes starting at
    once never share one.
    """
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        folder = project / name
        folder.mkdir(exist_ok=True)
        return folder
    for number in range(1, 10_000):
        folder = project / (name if number == 1 else f"{name}{number}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise ValueError(f"{project} already holds 9999 runs named {name!r}; choose another --name")


def run_folder_of(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/weights/last.pt`` -> ``<run>``)."""
    parent = Path(checkpoint).parent
    return parent.parent if parent.name == "weights" else parent


def latest_checkpoint(project: str | Path, name: Optional[str] = None) -> Path:
    """``project/name/weights/last.pt``, or with no name the most recently written
    ``last.pt`` under ``project`` (what ``--resume`` alone continues)."""
    project = Path(project)
    if name is not None:
        path = project / name / "weights" / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist")
        return path
    candidates = list(project.glob("*/weights/last.pt"))
    if not candidates:
        raise FileNotFoundError(f"nothing to resume: no */weights/last.pt under {project}; pass "
                                f"the checkpoint: --resume {project}/<run>/weights/last.pt")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def unique_output_names(paths: list[Path]) -> list[Path]:
    """Relative output paths without suffix, one per (distinct) input file, never two alike.

    Inputs are named by their path below the inputs' deepest common folder, so
    ``a/scene.png`` and ``b/scene.png`` become ``a/scene`` and ``b/scene`` while the files
    of one folder keep their bare stems; ``scene.png`` next to ``scene.jpg`` become
    ``scene_png`` and ``scene_jpg``.
    """
    resolved = [p.resolve() for p in paths]
    common = os.path.commonpath([str(p.parent) for p in resolved])
    names = [p.relative_to(common).with_suffix("") for p in resolved]
    taken = Counter(names)
    return [name.with_name(f"{name.name}_{path.suffix.lstrip('.')}") if taken[name] > 1 else name
            for name, path in zip(names, resolved)]
