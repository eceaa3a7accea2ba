"""The training / evaluation CLI end to end on tiny runs, each in a temporary working
directory: run folders (never overwritten), checkpoints that load with weights_only=True,
resume (exact, and restoring the run's settings), eval tables and JSON, detect's COCO
results through eval-detections, segment's masks, 2-rank DDP on gloo, Ctrl-C, and clear
errors for bad inputs."""
from __future__ import annotations

import csv
import json
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tritonvision.cli import main
from tritonvision.data import simple_yaml
from tritonvision.training import TrainConfig, load_checkpoint, train

CPU = ["--device", "cpu"]     # pinned: on a GPU machine "auto" would pick CUDA (tested on its own below)
TINY_SEG = ["--epochs", "2", "--num-train", "8", "--num-val", "4", "--batch-size", "4",
            "--image-size", "16", "--width", "4", "--depth", "2", *CPU]
TINY_DET = ["--task", "detect", "--epochs", "1", "--batch-size", "4", "--image-size", "16",
            "--width", "4", "--stride", "8", *CPU]
RUN_FILES = ("weights/best.pt", "weights/last.pt", "results.csv", "args.yaml", "results.png",
             "confusion_matrix.png")


def _tiny_config(project: Path, name: str, **overrides) -> TrainConfig:
    base = dict(task="seg", model="fcn8s", epochs=2, num_train=8, num_val=4, batch_size=4,
                image_size=16, width=4, depth=2, project=str(project), name=name, progress=False,
                device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


def _save_shapes_png(folder: Path, count: int, size=20, prefix="img") -> list[Path]:
    """Shapes images as PNG files (``size``: int or (height, width)); their targets."""
    from PIL import Image

    from tritonvision.data import ShapesDataset

    folder.mkdir(parents=True, exist_ok=True)
    height, width = (size, size) if isinstance(size, int) else size
    dataset = ShapesDataset(count, image_size=max(height, width), seed=3)
    targets = []
    for i in range(count):
        image, target = dataset[i]
        array = (image.permute(1, 2, 0)[:height, :width] * 255).round().byte().numpy()
        Image.fromarray(array).save(folder / f"{prefix}{i}.png")
        targets.append(target)
    return targets


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    """One tiny U-Net run through the CLI (progress bars left on): its folder and output."""
    folder = tmp_path_factory.mktemp("seg")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        from io import StringIO
        from contextlib import redirect_stderr, redirect_stdout
        out, err = StringIO(), StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            assert main(["train", *TINY_SEG]) == 0
    return folder / "runs" / "segment" / "train", out.getvalue(), err.getvalue()


def _write_yolo_data_yaml(root: Path) -> Path:
    """A tiny Ultralytics dataset of shapes (train 8 / val 4 images) and its data.yaml."""
    for split, count in (("train", 8), ("val", 4)):
        targets = _save_shapes_png(root / "images" / split, count, size=16, prefix=split)
        (root / "labels" / split).mkdir(parents=True)
        for i, target in enumerate(targets):
            lines = [f"{int(c)} {(x1 + x2) / 32:.4f} {(y1 + y2) / 32:.4f} {(x2 - x1) / 16:.4f} "
                     f"{(y2 - y1) / 16:.4f}" for (x1, y1, x2, y2), c
                     in zip(target["boxes"].tolist(), target["labels"].tolist())]
            (root / "labels" / split / f"{split}{i}.txt").write_text("\n".join(lines) + "\n")
    path = root / "data.yaml"
    path.write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                    f"names:\n  0: circle\n  1: square\n  2: triangle\n")
    return path


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    """One tiny YOLO run through the CLI on an Ultralytics data.yaml: (run folder, data root)."""
    folder = tmp_path_factory.mktemp("det")
    data = _write_yolo_data_yaml(folder / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(["train", *TINY_DET, "--data", str(data), "--no-progress"]) == 0
    return folder / "runs" / "detect" / "train", folder / "data"


def _without_matplotlib(monkeypatch) -> None:
    """Skip the plots (as without the [plot] extra): faster runs, and the note is tested."""
    from tritonvision.training import reports
    monkeypatch.setattr(reports, "have_matplotlib", lambda: False)


# ----------------------------------------------------------------------------- run folders
def test_train_writes_a_run_folder_and_says_where(seg_run):
    folder, printed, errors = seg_run
    for name in RUN_FILES:
        assert (folder / name).is_file(), name
    with open(folder / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert {"train/loss", "val/loss", "metrics/miou", "metrics/mean_dice", "lr", "time_s"} <= set(rows[0])
    args = simple_yaml.parse((folder / "args.yaml").read_text())
    assert args["epochs"] == 2 and args["width"] == 4 and args["data"] == "shapes"
    last_lines = printed.strip().splitlines()[-2:]
    assert last_lines[0] == f"results saved to {Path('runs/segment/train')}"
    assert "weights/best.pt" in last_lines[1] and "results.csv" in last_lines[1]
    assert "background" in printed and "circle" in printed          # best.pt's per-class table
    assert "\r" not in errors            # no progress bar when stderr is not a terminal


def test_a_second_identical_train_leaves_the_first_run_untouched(seg_run, monkeypatch, capsys):
    folder, _, _ = seg_run
    _without_matplotlib(monkeypatch)
    monkeypatch.chdir(folder.parent.parent.parent)
    before = {name: (folder / name).read_bytes() for name in RUN_FILES}
    assert main(["train", *TINY_SEG, "--epochs", "1", "--no-progress"]) == 0
    assert {name: (folder / name).read_bytes() for name in RUN_FILES} == before
    assert (folder.parent / "train2" / "weights" / "last.pt").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-2].endswith("train2")


def test_checkpoints_load_with_weights_only_and_hold_names_and_arguments(seg_run):
    folder, _, _ = seg_run
    for name in ("best.pt", "last.pt"):
        checkpoint = torch.load(folder / "weights" / name, weights_only=True)
        assert checkpoint["class_names"] == ["circle", "square", "triangle"]
        assert checkpoint["config"]["num_train"] == 8 and checkpoint["config"]["depth"] == 2
        assert {"model", "optimizer", "scheduler", "rng", "history", "epoch"} <= set(checkpoint)
    assert torch.load(folder / "weights" / "last.pt", weights_only=True)["epoch"] == 1


# ----------------------------------------------------------------------------- resume
class _Interrupted(Exception):
    pass


def _interrupt_after_first_epoch(line: str = "", *args) -> None:
    if line.startswith("epoch 1:"):
        raise _Interrupted   # after the epoch-1 checkpoint was written, like a killed job


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = train(_tiny_config(tmp_path, "a"), log=lambda *a: None)
    with pytest.raises(_Interrupted):
        train(_tiny_config(tmp_path, "b"), log=_interrupt_after_first_epoch)
    torch.manual_seed(1234)   # the resumed run must restore the RNG from the checkpoint
    resumed = train(_tiny_config(tmp_path, "b", resume="auto"), log=lambda *a: None)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert resumed["folder"] == tmp_path / "b"
    for (name, a), (_, b) in zip(straight["model"].state_dict().items(),
                                 resumed["model"].state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert straight["history"][-1]["train_loss"] == resumed["history"][-1]["train_loss"]


def test_resume_restores_the_run_settings_and_flags_override(tmp_path, monkeypatch, capsys):
    import tritonvision.ops
    from tritonvision.training import loop

    monkeypatch.chdir(tmp_path)
    _without_matplotlib(monkeypatch)
    assert main(["train", *TINY_SEG, "--epochs", "1", "--lr", "0.01", "--no-progress",
                 "--name", "x"]) == 0
    assert "plots skipped: matplotlib is not installed (pip install 'tritonvision[plot]')" \
        in capsys.readouterr().out
    assert not Path("runs/segment/x/results.png").exists()
    seen_reference = []
    one_epoch = loop._train_one_epoch
    monkeypatch.setattr(loop, "_train_one_epoch", lambda run, epoch: (
        seen_reference.append(tritonvision.ops.is_reference()), one_epoch(run, epoch))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # e.g. "lr_scheduler.step() before optimizer.step()"
        assert main(["train", "--resume", "runs/segment/x/weights/last.pt", "--epochs", "2",
                     "--reference"]) == 0
    assert sorted(os.listdir("runs/segment")) == ["x"]            # continued in its own folder
    config = load_checkpoint("runs/segment/x/weights/last.pt")["config"]
    assert (config["epochs"], config["num_train"], config["width"], config["lr"]) == (2, 8, 4, 0.01)
    assert config["reference"] and seen_reference == [True]
    assert "resumed from runs/segment/x/weights/last.pt at epoch 2" in capsys.readouterr().out
    assert main(["train", "--resume"]) == 2                        # the latest run: finished
    assert "finished 2 of 2 epochs" in capsys.readouterr().err


def test_ctrl_c_keeps_last_pt_and_exits_with_one_line(tmp_path, monkeypatch, capsys):
    from tritonvision.training import loop

    monkeypatch.chdir(tmp_path)
    _without_matplotlib(monkeypatch)
    validate = loop._validate

    def interrupt_in_epoch_two(run, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return validate(run, epoch, *args)
    monkeypatch.setattr(loop, "_validate", interrupt_in_epoch_two)
    assert main(["train", *TINY_SEG, "--no-progress"]) == 130
    message = capsys.readouterr().err.strip()
    last = Path("runs/segment/train/weights/last.pt")
    assert message == (f"tritonvision train: interrupted in epoch 2/2; {last} holds epoch 1 "
                       f"(continue with: tritonvision train --resume {last})")
    assert load_checkpoint(last)["epoch"] == 0


# ----------------------------------------------------------------------------- eval, segment
def test_eval_prints_per_class_iou_and_writes_json(seg_run, tmp_path, monkeypatch, capsys):
    folder, _, _ = seg_run
    monkeypatch.chdir(tmp_path)
    assert main(["eval", *CPU, str(folder / "weights" / "best.pt"), "--json", "out/m.json"]) == 0
    printed = capsys.readouterr().out
    miou_line = next(line for line in printed.splitlines() if line.startswith("miou"))
    assert 0.0 <= float(miou_line.split()[-1]) <= 1.0
    assert "triangle" in printed and "dice" in printed
    data = json.loads(Path("out/m.json").read_text())
    assert [row["class"] for row in data["per_class"]] == ["background", "circle", "square", "triangle"]
    assert data["metrics"]["miou"] == pytest.approx(float(miou_line.split()[-1]), abs=1e-4)
    assert len(data["confusion_matrix"]) == 4
    assert json.loads(Path("runs/segment/val/metrics.json").read_text()) == data
    assert Path("runs/segment/val/confusion_matrix.png").is_file()


def test_segment_writes_masks_the_size_of_each_input_and_keeps_same_names_apart(
        seg_run, tmp_path, monkeypatch, capsys):
    from PIL import Image

    folder, _, _ = seg_run
    monkeypatch.chdir(tmp_path)
    _save_shapes_png(tmp_path / "a", 1, size=(20, 30), prefix="scene")
    _save_shapes_png(tmp_path / "b", 1, size=(24, 12), prefix="scene")
    assert main(["segment", *CPU, str(folder / "weights" / "best.pt"), "a/scene0.png",
                 "b/scene0.png"]) == 0
    out = Path("runs/segment/predict")
    for name, size in (("a/scene0.png", (30, 20)), ("b/scene0.png", (12, 24))):
        assert Image.open(out / name).size == size
        mask = Image.open(out / "masks" / name)
        assert mask.size == size and mask.mode == "L" and mask.getextrema()[1] < 4
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"results saved to {out}")


# ----------------------------------------------------------------------------- detection
def _coco_annotations(path: Path, folder: Path, ids: list[int]) -> None:
    """A COCO annotation file for the val images of the data.yaml dataset."""
    images, annotations = [], []
    for image_id, label_file in zip(ids, sorted((folder / "labels" / "val").glob("*.txt"))):
        images.append({"id": image_id, "file_name": f"{label_file.stem}.png", "height": 16, "width": 16})
        for line in label_file.read_text().split("\n"):
            if line:
                c, cx, cy, w, h = (float(v) for v in line.split())
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": int(c) + 1, "iscrowd": 0, "area": w * h * 256,
                                    "bbox": [(cx - w / 2) * 16, (cy - h / 2) * 16, w * 16, h * 16]})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(("circle", "square", "triangle"))]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))


def test_detect_results_round_trip_through_eval_detections(det_run, tmp_path, monkeypatch, capsys):
    folder, data = det_run
    monkeypatch.chdir(tmp_path)
    _coco_annotations(tmp_path / "gt.json", data, [7, 9, 11, 13])
    assert main(["detect", *CPU, str(folder / "weights" / "best.pt"), str(data / "images" / "val"),
                 "--annotations", "gt.json", "--score-threshold", "0", "--save-txt",
                 "--save-conf"]) == 0
    out = Path("runs/detect/predict")
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and {p["image_id"] for p in predictions} <= {7, 9, 11, 13}
    assert {p["category_id"] for p in predictions} <= {1, 2, 3}
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(i["id"], Path(i["file_name"]).name) for i in images] == [
        (7, "val0.png"), (9, "val1.png"), (11, "val2.png"), (13, "val3.png")]
    labels = (out / "labels" / "val0.txt").read_text().splitlines()
    assert labels and all(len(line.split()) == 6 for line in labels)
    assert (out / "val0.png").is_file()
    capsys.readouterr()
    assert main(["eval-detections", "--gt", "gt.json", "--results", str(out / "predictions.json"),
                 "--json", "metrics.json"]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision" in printed and "circle" in printed      # COCO table + per class
    metrics = json.loads(Path("metrics.json").read_text())
    assert [row["class"] for row in metrics["per_class"]] == ["circle", "square", "triangle"]
    assert -1 <= (metrics["metrics"]["map"] or -1) <= 1


def test_detect_numbers_images_without_annotations(det_run, tmp_path, monkeypatch):
    folder, data = det_run
    monkeypatch.chdir(tmp_path)
    assert main(["detect", *CPU, str(folder / "weights" / "best.pt"),
                 str(data / "images" / "val" / "val1.png"), str(data / "images" / "train" / "train0.png"),
                 "--score-threshold", "0"]) == 0
    images = json.loads(Path("runs/detect/predict/images.json").read_text())
    assert [(i["id"], Path(i["file_name"]).name) for i in images["images"]] == [
        (1, "val1.png"), (2, "train0.png")]
    assert [c["name"] for c in images["categories"]] == ["circle", "square", "triangle"]
    assert Path("runs/detect/predict/val/val1.png").is_file()


def test_eval_of_a_detection_run_prints_per_class_ap(det_run, tmp_path, monkeypatch, capsys):
    folder, _ = det_run
    monkeypatch.chdir(tmp_path)
    assert main(["eval", *CPU, str(folder / "weights" / "best.pt")]) == 0
    printed = capsys.readouterr().out
    assert "map_50" in printed and "ap50" in printed and "square" in printed
    assert Path("runs/detect/val/metrics.json").is_file()


# ----------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    config = _tiny_config(Path(out), "ddp", epochs=1, model="unet", device="cpu", num_val=5)  # 3 + 2
    result = train(config, log=lambda *a: None)
    torch.save({"state": result["model"].state_dict(), "final": result["final"],
                "folder": str(result["folder"])}, Path(out) / f"rank{rank}.pt")


def test_two_rank_ddp_on_gloo_ends_with_identical_weights(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    for name, tensor in rank0["state"].items():
        torch.testing.assert_close(tensor, rank1["state"][name], rtol=0, atol=0, msg=name)
    assert rank0["final"] == rank1["final"]          # metrics synced across ranks
    assert rank0["folder"] == rank1["folder"] == str(tmp_path / "ddp")   # one run folder
    assert load_checkpoint(tmp_path / "ddp" / "weights" / "last.pt")["config"]["model"] == "unet"


# ----------------------------------------------------------------------------- errors
def test_bad_dataset_path_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "no_such_dataset", "--epochs", "1"]) == 2
    assert capsys.readouterr().err.startswith("tritonvision train: error: open_dataset: "
                                              "'no_such_dataset' is neither")
    assert not Path("runs").exists()


def test_one_annotation_file_needs_an_explicit_validation_split(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _save_shapes_png(tmp_path / "images", 2)
    Path("instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "img0.png"}, {"id": 2, "file_name": "img1.png"}],
        "annotations": [], "categories": [{"id": 1, "name": "circle"}]}))
    assert main(["train", "--data", "instances.json", "--task", "detect"]) == 2
    assert "--val-split 0.2" in capsys.readouterr().err
    assert main(["train", "--val-split", "0.2"]) == 2             # shapes have a val split
    assert "--num-val" in capsys.readouterr().err


def test_options_for_another_dataset_or_task_are_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", ".", "--num-train", "5"]) == 2
    assert "--num-train applies to the synthetic shapes" in capsys.readouterr().err
    assert main(["train", "--task", "det", "--loss", "ce"]) == 2
    assert "--loss applies to segmentation" in capsys.readouterr().err


def test_malformed_label_file_is_a_clear_error_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "yolo_data"
    for split in ("train", "val"):
        _save_shapes_png(root / split / "images", 2, size=16)
        (root / split / "labels").mkdir()
        (root / split / "labels" / "img0.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        (root / split / "labels" / "img1.txt").write_text("0 0.5 oops 0.2\n")
    code = main(["train", *CPU, "--task", "det", "--data", str(root), "--epochs", "1", "--batch-size",
                 "2", "--image-size", "16", "--width", "4", "--num-classes", "1", "--no-progress"])
    assert code == 2
    assert "img1.txt" in capsys.readouterr().err


def test_eval_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_errors_carry_one_prefix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_SEG, "--model", "yolo"]) == 2
    err = capsys.readouterr().err
    assert err == ("tritonvision train: error: --model 'yolo' is not a segmentation model; "
                   "choose one of unet, fcn8s, fcn\n")


@pytest.mark.gpu
def test_cli_trains_and_evaluates_on_cuda(tmp_path, monkeypatch, capsys):
    """One short eager CUDA run of train and eval (the others are pinned to the CPU)."""
    monkeypatch.chdir(tmp_path)
    cuda_seg = [arg for arg in TINY_SEG if arg not in CPU] + ["--device", "cuda:0", "--no-compile", "--epochs", "1"]
    assert main(["train", *cuda_seg, "--model", "fcn8s", "--name", "gpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "cuda:0" in printed and "miou" in printed.lower()
    assert main(["eval", "runs/segment/gpu/weights/last.pt", "--device", "cuda"]) == 0
