"""The command line itself: version, help per sub-command, argument validation, one error
prefix, options that do not apply; and the small helpers behind run folders."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tritonvision.cli import COMMANDS, main


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_version_and_python_dash_m(capsys):
    from tritonvision import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tritonvision {__version__}"
    done = subprocess.run([sys.executable, "-m", "tritonvision", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"tritonvision {__version__}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "bench"])
def test_each_command_has_user_help_with_examples_on_their_own_lines(command, capsys):
    text = _help(capsys, command)
    assert "``" not in text and "sub-command" not in text and ":func:" not in text
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert examples[0].startswith(f"  tritonvision {command}")


def test_detect_and_segment_show_only_their_own_options(capsys):
    detect, segment = _help(capsys, "detect"), _help(capsys, "segment")
    assert "--score-threshold" in detect and "--save-txt" in detect and "--alpha" not in detect
    assert "--alpha" in segment and "--score-threshold" not in segment and "--save-txt" not in segment


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--image-size"])
def test_zero_sizes_are_rejected_before_anything_runs(option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["train", option, "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"tritonvision train: error: argument {option}: must be at least 1, got 0" in err
    assert err.count("error:") == 1 and not Path("runs").exists()


def test_eval_detections_rejects_options_of_another_style(tmp_path, capsys):
    (tmp_path / "gt.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "dt.json").write_text("[]")
    code = main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--results",
                 str(tmp_path / "dt.json"), "--iou", "0.7"])
    assert code == 2
    assert capsys.readouterr().err.startswith("tritonvision eval-detections: error: --iou applies "
                                              "to --style voc / voc07")


def test_detect_rejects_save_conf_without_save_txt(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "x.pt"), str(tmp_path), "--save-conf"]) == 2
    assert "--save-txt" in capsys.readouterr().err


def test_missing_matplotlib_is_a_one_line_note_not_a_crash(monkeypatch, tmp_path, capsys):
    from tritonvision.training import reports

    monkeypatch.setattr(reports, "have_matplotlib", lambda: False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "dt.json").write_text("[]")
    assert main(["eval-detections", "--gt", "gt.json", "--results", "dt.json", "--plot", "p.png"]) == 2
    assert "pip install 'tritonvision[plot]'" in capsys.readouterr().err


def test_info_columns_line_up(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    starts = {line.index(line.split()[1]) for line in lines}   # the backend column
    ends = {len(line) for line in lines}                       # right-aligned times
    assert len(starts) == 1 and len(ends) == 1


# ----------------------------------------------------------------------------- run folders
def test_run_folders_are_numbered_like_ultralytics(tmp_path):
    from tritonvision.training.run_folder import latest_checkpoint, new_run_folder, run_folder_of

    made = [new_run_folder(tmp_path / "runs", "train") for _ in range(3)]
    assert [p.name for p in made] == ["train", "train2", "train3"]
    assert new_run_folder(tmp_path / "runs", "train", exist_ok=True) == made[0]
    assert run_folder_of(made[1] / "weights" / "last.pt") == made[1]
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        latest_checkpoint(tmp_path / "runs")
    for age, folder in enumerate(made[:2]):
        (folder / "weights").mkdir()
        (folder / "weights" / "last.pt").write_bytes(b"")
        os.utime(folder / "weights" / "last.pt", (1e9 + age, 1e9 + age))   # train2 is newer
    assert latest_checkpoint(tmp_path / "runs") == made[1] / "weights" / "last.pt"
    assert latest_checkpoint(tmp_path / "runs", "train") == made[0] / "weights" / "last.pt"


def test_output_names_keep_same_named_inputs_apart(tmp_path):
    from tritonvision.training.run_folder import unique_output_names

    files = [tmp_path / "a" / "scene.png", tmp_path / "b" / "scene.png", tmp_path / "b" / "scene.jpg"]
    assert unique_output_names(files) == [Path("a/scene"), Path("b/scene_png"), Path("b/scene_jpg")]
    assert unique_output_names(files[:1]) == [Path("scene")]
    assert unique_output_names([tmp_path / "x.png", tmp_path / "y.png"]) == [Path("x"), Path("y")]


def test_validation_hold_out_is_seeded_disjoint_and_complete():
    from tritonvision.training.datasets import holdout_indices

    train, val = holdout_indices(10, 0.3, seed=4)
    assert len(val) == 3 and sorted(train + val) == list(range(10))
    assert holdout_indices(10, 0.3, seed=4) == (train, val)
    with pytest.raises(ValueError, match="both need at least one"):
        holdout_indices(2, 0.1, seed=0)


def test_augmentation_defaults_for_image_folders_and_shapes():
    from tritonvision.data import RandomCrop, RandomHorizontalFlip, RandomScale
    from tritonvision.training import TrainConfig
    from tritonvision.training.datasets import augmentation

    steps = augmentation(TrainConfig(data="my_dataset"))
    assert [type(s) for s in steps] == [RandomScale, RandomCrop, RandomHorizontalFlip]
    assert (steps[0].min_scale, steps[0].max_scale, steps[2].p) == (0.75, 1.25, 0.5)
    assert augmentation(TrainConfig()) == []                      # shapes: none unless asked
    assert [type(s) for s in augmentation(TrainConfig(fliplr=0.3))] == [RandomHorizontalFlip]
    assert augmentation(TrainConfig(data="my_dataset", fliplr=0, scale=0)) == []


def test_training_splits_of_an_image_folder_are_letterboxed_and_held_out(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from tritonvision.training import TrainConfig
    from tritonvision.training.datasets import check_validation_source, open_split

    for i in range(5):                                   # images/ + masks/, no split folders
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.full((10, 20, 3), 200, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(np.ones((10, 20), np.uint8)).save(tmp_path / "masks" / f"{i}.png")
    config = TrainConfig(data=str(tmp_path), image_size=8, fliplr=0.0, scale=0.0)
    with pytest.raises(ValueError, match="--val-split 0.2"):
        check_validation_source(config)
    config = TrainConfig(data=str(tmp_path), image_size=8, fliplr=0.0, scale=0.0, val_split=0.4)
    check_validation_source(config)
    train, val = open_split(config, "train", augment=True), open_split(config, "val")
    assert (len(train), len(val)) == (3, 2)
    image, target = val[0]
    assert image.shape == (3, 8, 8)                      # 10 x 20 fitted to 4 x 8, padded
    assert torch.all(target["mask"][:2] == 255) and torch.all(target["mask"][2:6] == 1)


def test_predictions_map_back_from_the_letterbox_to_the_original_pixels():
    import torch

    from tritonvision.commands.predict import boxes_to_image, letterboxed, logits_to_image
    from tritonvision.data import Letterbox

    image = torch.rand(3, 30, 12)                       # tall: fitted to 16 x 6 (+5 / 5 padding)
    boxes = torch.tensor([[0.0, 0.0, 12.0, 30.0], [2.0, 9.0, 7.0, 21.0]])
    batch, geometry = letterboxed(image, 16)
    _, target = Letterbox(16)(image, {"boxes": boxes})
    assert batch.shape == (1, 3, 16, 16)
    torch.testing.assert_close(boxes_to_image(target["boxes"], geometry, 30, 12), boxes)
    logits = torch.zeros(1, 2, 16, 16)
    logits[:, 1, :, :8] = 1.0                           # class 1 on the left half of the input
    back = logits_to_image(logits, geometry, 30, 12)
    assert back.shape == (1, 2, 30, 12)
    classes = back.argmax(1)[0]
    assert torch.all(classes[:, :2] == 1) and torch.all(classes[:, -2:] == 0)
