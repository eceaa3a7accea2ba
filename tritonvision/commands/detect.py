"""``tritonvision detect``: boxes for image files as data (a COCO result JSON, optionally
YOLO txt labels) and as pictures (overlays), in ``runs/detect/predict``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from . import predict
from .arguments import unit_interval

SUMMARY = "Detect objects in images with a trained YOLO checkpoint."
EXAMPLES = """\
  tritonvision detect runs/detect/train/weights/best.pt photos/
      overlays, predictions.json (COCO results) and images.json in runs/detect/predict
  tritonvision detect best.pt val2017/ --annotations instances_val2017.json
      image and category ids taken from the annotation file, then:
      tritonvision eval-detections --gt instances_val2017.json --results runs/detect/predict/predictions.json
  tritonvision detect best.pt photos/ --save-txt --save-conf
      also YOLO labels (class cx cy w h score) in runs/detect/predict/labels
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    predict.add_inputs(parser)
    group = parser.add_argument_group("detection")
    group.add_argument("--score-threshold", type=unit_interval, default=0.25, metavar="T",
                       help="keep boxes scoring above this (default %(default)s)")
    group.add_argument("--iou-threshold", type=unit_interval, default=0.5, metavar="T",
                       help="non-maximum suppression IoU (default %(default)s)")
    group = parser.add_argument_group("saved data")
    group.add_argument("--annotations", default=None, metavar="JSON",
                       help="a COCO annotation file listing these images: image ids by file "
                            "name, category ids by class name (default: numeric file names "
                            "as ids, else 1, 2, ... in input order; category id = class index)")
    group.add_argument("--save-txt", action="store_true",
                       help="also write YOLO labels (class cx cy w h, normalised) per image")
    group.add_argument("--save-conf", action="store_true",
                       help="with --save-txt: add each box's score as a sixth column")
    predict.add_run_options(parser)


# ----------------------------------------------------------------------------- ids
def _ids_from_annotations(path: str, files: list[Path], names: list[str]) -> tuple[list, list]:
    """Image ids by file name (full relative name, else base name) and category ids by
    class name, from a COCO annotation file."""
    from tritonvision.metrics.coco_json import load_json

    data = load_json(path, "annotation")
    by_name, by_base = {}, {}
    for image in data.get("images", []):
        by_name[image["file_name"]] = image["id"]
        by_base.setdefault(Path(image["file_name"]).name, image["id"])
    image_ids = []
    for file in files:
        image_id = by_name.get(file.as_posix(), by_base.get(file.name))
        if image_id is None:
            raise ValueError(f"{file.name} is not an image of {path} (no 'images' entry with "
                             f"that file_name)")
        image_ids.append(image_id)
    categories = {c["name"]: c["id"] for c in data.get("categories", [])}
    missing = [n for n in names if n not in categories]
    if missing:
        raise ValueError(f"the checkpoint's classes {missing} are not categories of {path} "
                         f"(it has {sorted(categories)})")
    return image_ids, [categories[n] for n in names]


def _default_image_ids(files: list[Path]) -> list[int]:
    """COCO's convention when every file name is a distinct number (000000397133.jpg ->
    397133), else 1, 2, ... in input order."""
    stems = [f.stem for f in files]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(files) + 1))


# ----------------------------------------------------------------------------- one image
@torch.no_grad()
def _detect(session: predict.Session, image: torch.Tensor, args: argparse.Namespace):
    """(boxes [K, 4] xyxy in the image's pixels, scores [K], labels [K]) on the CPU."""
    batch, geometry = predict.letterboxed(image, session.config.image_size)
    outputs = session.model(batch.to(session.device))
    boxes, scores, labels, counts = session.model.postprocess(
        outputs.float(), args.score_threshold, args.iou_threshold)
    count = int(counts[0])
    boxes = predict.boxes_to_image(boxes[0, :count].cpu(), geometry, *image.shape[-2:])
    return boxes, scores[0, :count].cpu(), labels[0, :count].cpu()


def _draw(image: torch.Tensor, boxes, scores, labels, names: list[str]):
    from PIL import ImageDraw

    canvas = predict.canvas_of(image)
    draw = ImageDraw.Draw(canvas)
    for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        draw.rectangle(box, outline=predict.colour(label + 1), width=2)
        draw.text((box[0] + 2, box[1] + 1), f"{names[label]} {score:.2f}",
                  fill=predict.colour(label + 1))
    return canvas


def _yolo_lines(boxes, scores, labels, height: int, width: int, with_score: bool) -> str:
    lines = []
    for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                  (y2 - y1) / height] + ([score] if with_score else [])
        lines.append(f"{label} " + " ".join(f"{v:.6f}" for v in values))
    return "".join(line + "\n" for line in lines)


def _coco_records(image_id, boxes, scores, labels, category_ids: list) -> list[dict]:
    return [{"image_id": image_id, "category_id": category_ids[label],
             "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
             "score": round(score, 5)}
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(),
                                                      labels.tolist())]


# ----------------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    from tritonvision.data import load_image
    from tritonvision.training.loop import ops_mode

    if args.save_conf and not args.save_txt:
        raise ValueError("--save-conf adds a column to the --save-txt labels; pass both")
    session = predict.open_session(args, "det")
    if args.annotations:
        image_ids, category_ids = _ids_from_annotations(args.annotations, session.files,
                                                        session.names)
    else:
        image_ids, category_ids = _default_image_ids(session.files), list(range(len(session.names)))
    records, images = [], []
    with ops_mode(bool(args.reference)):
        for path, name, image_id in zip(session.files, session.outputs, image_ids):
            image = load_image(path)
            height, width = image.shape[-2:]
            boxes, scores, labels = _detect(session, image, args)
            target = session.output(name, ".png")
            _draw(image, boxes, scores, labels, session.names).save(target)
            if args.save_txt:
                session.output(name, ".txt", "labels").write_text(
                    _yolo_lines(boxes, scores, labels, height, width, args.save_conf))
            records += _coco_records(image_id, boxes, scores, labels, category_ids)
            images.append({"id": image_id, "file_name": str(path), "height": height, "width": width})
            print(f"{path} -> {target} ({len(scores)} detections)")
    categories = [{"id": c, "name": n} for c, n in zip(category_ids, session.names)]
    (session.folder / "predictions.json").write_text(json.dumps(records))
    (session.folder / "images.json").write_text(
        json.dumps({"images": images, "categories": categories}, indent=1))
    print(f"\nresults saved to {session.folder}: {len(images)} overlays (.png), predictions.json "
          f"(COCO results), images.json (image ids){', labels/ (YOLO txt)' if args.save_txt else ''}")
    return 0
