"""The training / evaluation CLI end to end on tiny runs: train -> eval -> segment/detect,
exact resume, 2-rank DDP on gloo, and clear errors for bad inputs."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tritonvision.cli import main
from tritonvision.training import TrainConfig, load_checkpoint, train

CPU = ["--device", "cpu"]     # pinned: on a GPU machine "auto" would pick CUDA (tested on its own below)
TINY_SEG = ["--task", "seg", "--epochs", "1", "--num-train", "8", "--num-val", "4",
            "--batch-size", "4", "--image-size", "16", "--width", "4", "--depth", "2",
            "--no-progress", *CPU]


def _tiny_config(out: Path, **overrides) -> TrainConfig:
    base = dict(task="seg", model="fcn8s", epochs=2, num_train=8, num_val=4, batch_size=4,
                image_size=16, width=4, depth=2, out=str(out), progress=False, device="cpu")
    base.update(overrides)
    return TrainConfig(**base)


def _save_shapes_png(folder: Path, count: int, size: int = 20) -> None:
    from PIL import Image

    from tritonvision.data import ShapesDataset

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, _ = ShapesDataset(count, image_size=size, seed=3)[i]
        array = (image.permute(1, 2, 0) * 255).round().byte().numpy()
        Image.fromarray(array).save(folder / f"img{i}.png")


def test_cli_trains_evaluates_and_segments(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_SEG, "--model", "unet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "miou" in printed and "pixel_accuracy" in printed and "epoch 1" in printed
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["epoch"] == 0 and set(checkpoint) >= {"model", "optimizer", "rng", "config"}

    assert main(["eval", str(out / "last.pt"), "--num-images", "4", *CPU]) == 0
    table = capsys.readouterr().out
    miou_line = next(line for line in table.splitlines() if line.startswith("miou"))
    assert 0.0 <= float(miou_line.split()[-1]) <= 1.0

    _save_shapes_png(tmp_path / "images", 2)
    assert main(["segment", str(out / "last.pt"), str(tmp_path / "images"),
                 "--out", str(tmp_path / "overlays"), *CPU]) == 0
    from PIL import Image
    overlays = sorted((tmp_path / "overlays").glob("*.png"))
    assert [p.name for p in overlays] == ["img0.png", "img1.png"]
    assert Image.open(overlays[0]).size == (20, 20)   # back at the input's own size


def test_cli_trains_and_runs_yolo_detection(tmp_path, capsys):
    out = tmp_path / "det"
    assert main(["train", "--task", "det", "--epochs", "1", "--num-train", "8", "--num-val", "4",
                 "--batch-size", "4", "--image-size", "16", "--width", "4", "--stride", "8",
                 "--no-progress", "--out", str(out), *CPU]) == 0
    printed = capsys.readouterr().out
    assert "map_50" in printed
    _save_shapes_png(tmp_path / "images", 1, size=24)
    assert main(["detect", str(out / "last.pt"), str(tmp_path / "images" / "img0.png"),
                 "--score-threshold", "0.0", "--out", str(tmp_path / "boxes"), *CPU]) == 0
    assert (tmp_path / "boxes" / "img0.png").is_file()
    assert "detections" in capsys.readouterr().out


class _Interrupted(Exception):
    pass


def _interrupt_after_first_epoch(line: str = "", *args) -> None:
    if line.startswith("epoch 1:"):
        raise _Interrupted   # after the epoch-1 checkpoint was written, like a killed job


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = train(_tiny_config(tmp_path / "a"), log=lambda *a: None)
    with pytest.raises(_Interrupted):
        train(_tiny_config(tmp_path / "b"), log=_interrupt_after_first_epoch)
    torch.manual_seed(1234)   # the resumed run must restore the RNG from the checkpoint
    resumed = train(_tiny_config(tmp_path / "b", resume="auto"), log=lambda *a: None)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    for (name, a), (_, b) in zip(straight["model"].state_dict().items(),
                                 resumed["model"].state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert straight["history"][-1]["train_loss"] == resumed["history"][-1]["train_loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    config = _tiny_config(Path(out), epochs=1, model="unet", num_val=5)  # 3 + 2
    result = train(config, log=lambda *a: None)
    torch.save({"state": result["model"].state_dict(), "final": result["final"]},
               Path(out) / f"rank{rank}.pt")


def test_two_rank_ddp_on_gloo_ends_with_identical_weights(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    for name, tensor in rank0["state"].items():
        torch.testing.assert_close(tensor, rank1["state"][name], rtol=0, atol=0, msg=name)
    assert rank0["final"] == rank1["final"]          # metrics synced across ranks
    assert (tmp_path / "last.pt").is_file()          # written by rank 0
    assert load_checkpoint(tmp_path / "last.pt")["config"]["model"] == "unet"


def test_bad_dataset_path_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_such_dataset"
    assert main(["train", *TINY_SEG, "--data", str(missing), "--out", str(tmp_path)]) == 2
    assert str(missing) in capsys.readouterr().out


def test_malformed_label_file_is_a_clear_error_naming_the_file(tmp_path, capsys):
    root = tmp_path / "yolo_data"
    _save_shapes_png(root / "images", 2, size=16)
    (root / "labels").mkdir()
    (root / "labels" / "img0.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "img1.txt").write_text("0 0.5 oops 0.2\n")
    code = main(["train", "--task", "det", "--data", str(root), "--epochs", "1", "--batch-size",
                 "2", "--image-size", "16", "--width", "4", "--num-classes", "1", "--no-progress",
                 "--out", str(tmp_path / "out"), *CPU])
    assert code == 2
    assert "img1.txt" in capsys.readouterr().out


def test_eval_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.pt"), *CPU]) == 2
    assert "nope.pt" in capsys.readouterr().out


def test_wrong_model_for_the_task_is_a_clear_error(tmp_path, capsys):
    assert main(["train", *TINY_SEG, "--model", "yolo", "--out", str(tmp_path)]) == 2
    assert "not a segmentation model" in capsys.readouterr().out


@pytest.mark.gpu
def test_cli_trains_and_evaluates_on_cuda(tmp_path, capsys):
    # one short eager run (no torch.compile: seconds, not minutes) of what users run on a GPU:
    # the fused Dice+CE loss and deconvs in training, the confusion matrix in validation
    out = tmp_path / "run"
    cuda_seg = [arg for arg in TINY_SEG if arg not in CPU] + ["--device", "cuda:0", "--no-compile"]
    assert main(["train", *cuda_seg, "--model", "fcn8s", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "device cuda:0" in printed and "miou" in printed
    assert torch.isfinite(torch.tensor(load_checkpoint(out / "last.pt")["history"][-1]["train_loss"]))
    assert main(["eval", str(out / "last.pt"), "--num-images", "4", "--device", "cuda"]) == 0
    assert "miou" in capsys.readouterr().out
