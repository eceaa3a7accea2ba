"""tritonvision.data folder readers and open_dataset, on tiny folders written here."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tritonvision.data import (CocoDetection, MaskFolder, VOCDetection, VOCSegmentation,
                               YoloDetection, collate_detection, collate_segmentation,
                               open_dataset, voc_palette)


def _write_png(path, h, w, seed=0):
    """A random RGB PNG (lossless); returns the pixels as float [3, H, W] in [0, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return torch.from_numpy(pixels).permute(2, 0, 1).double() / 255


def _write_mask(path, values, mode="P"):
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.ascontiguousarray(values, dtype=np.uint8)
    img = Image.frombytes(mode, (values.shape[1], values.shape[0]), values.tobytes())
    if mode == "P":
        img.putpalette(voc_palette().reshape(-1).tolist())
    img.save(path)


# ---------------------------------------------------------------- COCO
def _coco_folder(tmp_path):
    a = _write_png(tmp_path / "images" / "a.png", 20, 30, seed=1)
    _write_png(tmp_path / "images" / "b.png", 10, 10, seed=2)
    data = {
        "images": [{"id": 42, "file_name": "a.png", "width": 30, "height": 20},
                   {"id": 7, "file_name": "b.png", "width": 10, "height": 10}],
        "categories": [{"id": 12, "name": "zebra"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 12, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 42, "category_id": 3, "bbox": [25.5, 15, 10, 10], "iscrowd": 1},
            {"id": 3, "image_id": 42, "category_id": 7, "bbox": [3, 3, 0, 4]},  # empty: dropped
        ],
    }
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_train.json"
    path.write_text(json.dumps(data, indent=1))
    return path, a, data


def test_coco_reader_boxes_labels_and_category_mapping(tmp_path):
    path, pixels, _ = _coco_folder(tmp_path)
    ds = CocoDetection(tmp_path / "images", path)
    assert len(ds) == 2
    assert ds.categories == ["cat", "dog", "zebra"] and ds.category_ids == [3, 7, 12]
    image, target = ds[0]
    assert image.shape == (3, 20, 30) and image.dtype == torch.float32
    assert torch.allclose(image.double(), pixels, atol=1e-6)
    assert target["image_id"] == 42 and "mask" not in target
    # xywh -> xyxy, clipped to the 30 x 20 image; the zero-width box is dropped
    assert target["boxes"].tolist() == [[1, 2, 11, 7], [25.5, 15, 30, 20]]
    assert target["labels"].tolist() == [2, 0]
    assert target["iscrowd"].tolist() == [0, 1]
    image, target = ds[1]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert CocoDetection(tmp_path / "images", path, skip_crowd=True)[0][1]["labels"].tolist() == [2]


def test_coco_reader_errors_name_the_file_and_line(tmp_path):
    path, _, data = _coco_folder(tmp_path)
    text = path.read_text().splitlines()
    text[3] = text[3] + ","  # a trailing comma: malformed JSON on line 4
    bad = tmp_path / "bad.json"
    bad.write_text("\n".join(text))
    with pytest.raises(ValueError, match=r"bad\.json:\d+: malformed JSON"):
        CocoDetection(tmp_path / "images", bad)
    data["annotations"][1]["bbox"] = [1, 2, 3]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad\.json: annotations\[1\] \(id 2\) needs 'bbox'"):
        CocoDetection(tmp_path / "images", bad)
    data["annotations"][1]["bbox"] = [1, 2, 3, 4]
    data["annotations"][1]["category_id"] = 99
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="category_id 99"):
        CocoDetection(tmp_path / "images", bad)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'annotations'"):
        CocoDetection(tmp_path / "images", bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        CocoDetection(tmp_path / "images", tmp_path / "missing.json")
    data["annotations"][1]["category_id"] = 3
    data["images"][1]["file_name"] = "gone.png"
    bad.write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        CocoDetection(tmp_path / "images", bad)[1]


# ---------------------------------------------------------------- VOC
VOC_XML = """<annotation>
  <filename>{stem}.png</filename>
  <object>
    <name>dog</name>
    <difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox>
  </object>
  <object>
    <name>{second}</name>
    <difficult>1</difficult>
    <bndbox><xmin>5</xmin><ymin>5</ymin><xmax>{xmax}</xmax><ymax>20</ymax></bndbox>
  </object>
</annotation>
"""


def _voc_folder(root, second="person", xmax="16"):
    _write_png(root / "JPEGImages" / "0001.png", 20, 16, seed=3)
    _write_png(root / "JPEGImages" / "0002.png", 20, 16, seed=4)
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "0001.xml").write_text(VOC_XML.format(stem="0001", second=second, xmax=xmax))
    (root / "Annotations" / "0002.xml").write_text(VOC_XML.format(stem="0002", second="cat", xmax="8"))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("0002\n")


def test_voc_detection_boxes_labels_difficult(tmp_path):
    _voc_folder(tmp_path)
    ds = VOCDetection(tmp_path)
    assert len(ds) == 2 and ds.num_classes == 20 and ds.ids == ["0001", "0002"]
    image, target = ds[0]
    assert image.shape == (3, 20, 16)
    # 1-based inclusive VOC pixels -> pixel-edge xyxy
    assert target["boxes"].tolist() == [[0, 1, 10, 12], [4, 4, 16, 20]]
    assert target["labels"].tolist() == [11, 14]  # dog, person in VOC order
    assert target["difficult"].tolist() == [False, True]
    _, target = VOCDetection(tmp_path, keep_difficult=False)[0]
    assert target["labels"].tolist() == [11]
    val = VOCDetection(tmp_path, image_set="val")
    assert val.ids == ["0002"] and val[0][1]["labels"].tolist() == [11, 7]


def test_voc_detection_errors_name_the_file_and_line(tmp_path):
    _voc_folder(tmp_path / "a", second="unicorn")
    with pytest.raises(ValueError, match=r"0001\.xml:8: object name 'unicorn'"):
        VOCDetection(tmp_path / "a")
    assert VOCDetection(tmp_path / "a", classes=["dog", "unicorn", "cat"])[0][1]["labels"].tolist() == [0, 1]
    _voc_folder(tmp_path / "b", xmax="abc")
    with pytest.raises(ValueError, match=r"0001\.xml:11: <xmax> must be a number"):
        VOCDetection(tmp_path / "b")
    _voc_folder(tmp_path / "c")
    (tmp_path / "c" / "Annotations" / "0002.xml").write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(ValueError, match=r"0002\.xml:3: malformed XML"):
        VOCDetection(tmp_path / "c")
    (tmp_path / "c" / "Annotations" / "0002.xml").write_text(
        "<annotation>\n <object>\n  <name>dog</name>\n </object>\n</annotation>")
    with pytest.raises(ValueError, match=r"0002\.xml:2: <object> 'dog' has no <bndbox>"):
        VOCDetection(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="Annotations"):
        VOCDetection(tmp_path / "nowhere")


def test_voc_segmentation_palette_void_and_rgb(tmp_path):
    values = np.zeros((20, 16), dtype=np.uint8)
    values[2:8, 3:9] = 12
    values[10:, :] = 255
    values[8, :] = 20
    _write_png(tmp_path / "JPEGImages" / "x.png", 20, 16)
    _write_mask(tmp_path / "SegmentationClass" / "x.png", values, mode="P")
    ds = VOCSegmentation(tmp_path)
    image, target = ds[0]
    assert set(target) == {"mask", "image_id"} and image.shape == (3, 20, 16)
    assert target["mask"].dtype == torch.int64
    assert torch.equal(target["mask"], torch.from_numpy(values.astype(np.int64)))
    # the same mask stored as RGB in the VOC colour map
    Image.fromarray(voc_palette()[values]).save(tmp_path / "SegmentationClass" / "x.png")
    assert torch.equal(VOCSegmentation(tmp_path)[0][1]["mask"], torch.from_numpy(values.astype(np.int64)))
    values[0, 0] = 30
    _write_mask(tmp_path / "SegmentationClass" / "x.png", values, mode="P")
    with pytest.raises(ValueError, match=r"x\.png: mask value 30"):
        VOCSegmentation(tmp_path)[0]
    _write_mask(tmp_path / "SegmentationClass" / "x.png", values[:10], mode="P")
    with pytest.raises(ValueError, match=r"x\.png: mask is \(10, 16\)"):
        VOCSegmentation(tmp_path)[0]


# ---------------------------------------------------------------- YOLO
def _yolo_folder(root, lines="0 0.5 0.5 0.5 0.25\n2 0.1 0.2 0.2 0.4\n"):
    _write_png(root / "images" / "a.png", 20, 40, seed=5)
    _write_png(root / "images" / "b.png", 8, 8, seed=6)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "a.txt").write_text(lines)


def test_yolo_reader_converts_normalised_cxcywh_to_pixels(tmp_path):
    _yolo_folder(tmp_path)
    ds = YoloDetection(tmp_path / "images", tmp_path / "labels")
    assert len(ds) == 2 and ds.num_classes == 3 and ds.classes == ("0", "1", "2")
    image, target = ds[0]
    assert image.shape == (3, 20, 40) and "mask" not in target
    expected = torch.tensor([[10.0, 7.5, 30.0, 12.5], [0.0, 0.0, 8.0, 8.0]])
    assert torch.allclose(target["boxes"], expected, atol=1e-5)
    assert target["labels"].tolist() == [0, 2]
    _, target = ds[1]  # no label file: a background image
    assert target["boxes"].shape == (0, 4)
    (tmp_path / "classes.txt").write_text("a\nb\nc\nd\n")
    assert YoloDetection(tmp_path / "images", tmp_path / "labels").classes == ("a", "b", "c", "d")


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.5", "expected 5 fields"),
    ("x 0.5 0.5 0.5 0.5", "integer class"),
    ("0 0.5 0.5 0.5 nan", "normalised"),
    ("0 12 5 3 3", "normalised"),
    ("-1 0.5 0.5 0.5 0.5", ">= 0"),
])
def test_yolo_reader_malformed_lines_name_file_and_line(tmp_path, line, message):
    _yolo_folder(tmp_path, lines=f"# comment\n0 0.5 0.5 0.1 0.1\n\n{line}\n")
    with pytest.raises(ValueError, match=rf"a\.txt:4: .*{message}"):
        YoloDetection(tmp_path / "images", tmp_path / "labels")


def test_yolo_reader_class_out_of_range_and_missing_folders(tmp_path):
    _yolo_folder(tmp_path)
    with pytest.raises(ValueError, match=r"a\.txt:2: class 2 is out of range for the 2 classes"):
        YoloDetection(tmp_path / "images", tmp_path / "labels", classes=["x", "y"])
    with pytest.raises(FileNotFoundError, match="labels folder"):
        YoloDetection(tmp_path / "images", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="images folder"):
        YoloDetection(tmp_path / "nope", tmp_path / "labels")


# ---------------------------------------------------------------- MaskFolder
def test_mask_folder_reads_index_masks_and_infers_classes(tmp_path):
    masks = []
    for i, stem in enumerate(["p", "q"]):
        _write_png(tmp_path / "images" / f"{stem}.png", 12, 10, seed=i)
        m = np.zeros((12, 10), dtype=np.uint8)
        m[i:i + 4, 2:5] = 3 + i
        m[-1] = 255
        _write_mask(tmp_path / "masks" / f"{stem}.png", m, mode="L")
        masks.append(torch.from_numpy(m.astype(np.int64)))
    ds = MaskFolder(tmp_path / "images", tmp_path / "masks")
    assert len(ds) == 2 and ds.num_seg_classes == 5 and ds.num_classes == 4
    for i in range(2):
        image, target = ds[i]
        assert image.shape == (3, 12, 10) and torch.equal(target["mask"], masks[i])
        assert "boxes" not in target and "labels" not in target
    images, stacked = collate_segmentation([ds[0], ds[1]])
    assert images.shape == (2, 3, 12, 10) and torch.equal(stacked[1], masks[1])
    with pytest.raises(ValueError, match=r"q\.png: mask value 4"):
        MaskFolder(tmp_path / "images", tmp_path / "masks", num_seg_classes=4)[1]


def test_mask_folder_missing_mask_and_size_mismatch(tmp_path):
    _write_png(tmp_path / "images" / "a.png", 6, 6)
    _write_png(tmp_path / "images" / "b.png", 6, 6)
    _write_mask(tmp_path / "masks" / "a.png", np.zeros((6, 7)), mode="L")
    with pytest.raises(FileNotFoundError, match=r"b\.png"):
        MaskFolder(tmp_path / "images", tmp_path / "masks")
    _write_mask(tmp_path / "masks" / "b.png", np.zeros((6, 6)), mode="L")
    ds = MaskFolder(tmp_path / "images", tmp_path / "masks", num_seg_classes=2)
    with pytest.raises(ValueError, match=r"a\.png: mask is \(6, 7\)"):
        ds[0]
    (tmp_path / "images" / "c.png").write_bytes(b"not a png")
    _write_mask(tmp_path / "masks" / "c.png", np.zeros((6, 6)), mode="L")
    with pytest.raises(ValueError, match=r"c\.png: cannot read image"):
        MaskFolder(tmp_path / "images", tmp_path / "masks", num_seg_classes=2)[2]


# ---------------------------------------------------------------- open_dataset
def test_open_dataset_shapes_splits():
    train = open_dataset("shapes", "det", "train", num_images=5, image_size=32)
    val = open_dataset("shapes", "seg", "val", num_images=5, image_size=32)
    assert len(train) == 5 and train.image_size == 32
    assert not torch.equal(train[0][0], val[0][0])
    assert len(open_dataset("shapes", "seg", "val")) == 200


def test_open_dataset_detects_each_folder_format(tmp_path):
    _voc_folder(tmp_path / "voc" / "VOCdevkit" / "VOC2012")
    ds = open_dataset(str(tmp_path / "voc"), "det", "val")
    assert isinstance(ds, VOCDetection) and ds.ids == ["0002"]
    assert isinstance(open_dataset(str(tmp_path / "voc"), "det", "train"), VOCDetection)
    with pytest.raises(ValueError, match="SegmentationClass"):
        open_dataset(str(tmp_path / "voc"), "seg")
    _write_mask(tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "0001.png",
                np.zeros((20, 16)))
    assert isinstance(open_dataset(str(tmp_path / "voc"), "seg"), VOCSegmentation)

    _coco_folder(tmp_path / "coco")
    ds = open_dataset(str(tmp_path / "coco"), "det", "train")
    assert isinstance(ds, CocoDetection) and len(ds) == 2
    ds = open_dataset(str(tmp_path / "coco" / "annotations" / "instances_train.json"), "det")
    assert isinstance(ds, CocoDetection)
    with pytest.raises(ValueError, match=r"instances_train\.json: annotations\[0\] \(id 1\) needs a 'segmentation'"):
        open_dataset(str(tmp_path / "coco"), "seg")  # seg reads COCO masks: these have none

    for split in ("train", "valid"):  # YOLO with split folders
        _yolo_folder(tmp_path / "yolo" / split)
    (tmp_path / "yolo" / "valid" / "images" / "b.png").unlink()
    assert len(open_dataset(str(tmp_path / "yolo"), "det", "train")) == 2
    assert len(open_dataset(str(tmp_path / "yolo"), "det", "val")) == 1
    with pytest.raises(ValueError, match="needs masks"):
        open_dataset(str(tmp_path / "yolo"), "seg", "train")

    _write_png(tmp_path / "seg" / "images" / "val" / "a.png", 4, 4)
    _write_mask(tmp_path / "seg" / "masks" / "val" / "a.png", np.ones((4, 4)), mode="L")
    ds = open_dataset(str(tmp_path / "seg"), "seg", "val")
    assert isinstance(ds, MaskFolder) and len(ds) == 1
    with pytest.raises(ValueError, match="needs boxes"):
        open_dataset(str(tmp_path / "seg"), "det", "val")
    images, targets = collate_detection([open_dataset(str(tmp_path / "yolo"), "det", "val")[0]])
    assert images.shape == (1, 3, 20, 40) and targets[0]["labels"].tolist() == [0, 2]


def test_open_dataset_rejects_unknown_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither 'shapes' nor an existing path"):
        open_dataset(str(tmp_path / "missing"), "det")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the dataset format"):
        open_dataset(str(tmp_path / "empty"), "seg")
    with pytest.raises(ValueError, match="task must be"):
        open_dataset("shapes", "classify")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="neither a COCO .json nor an Ultralytics data.yaml"):
        open_dataset(str(tmp_path / "x.txt"), "det")


# ---------------------------------------------------------------- EXIF, data.yaml, shared splits
def test_load_image_applies_the_exif_orientation(tmp_path):
    from PIL import Image

    from tritonvision.data import load_image
    from tritonvision.data.images import EXIF_ORIENTATION, image_size

    array = np.zeros((10, 30, 3), dtype=np.uint8)
    array[:, :5] = 255                                      # white stripe on the left
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6                              # stored turned: shown rotated 90 deg clockwise
    Image.fromarray(array).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "phone.jpg")
    assert image.shape == (3, 30, 10) and image_size(tmp_path / "phone.jpg") == (30, 10)
    assert image[:, :5].mean() > 0.9 and image[:, -5:].mean() < 0.1   # the stripe is now on top


def test_simple_yaml_reads_ultralytics_data_files_and_round_trips_args():
    from tritonvision.data import simple_yaml

    text = """# COCO8
path: ../datasets/coco8  # dataset root
train: images/train
val: 'images/val'
test:
names:
  0: person
  1: "traffic light"
flips: [0.5, 1e-3, true, null, 'a, b']
"""
    assert simple_yaml.parse(text) == {
        "path": "../datasets/coco8", "train": "images/train", "val": "images/val", "test": None,
        "names": {0: "person", 1: "traffic light"}, "flips": [0.5, 0.001, True, None, "a, b"]}
    args = {"data": "shapes", "lr": 1e-5, "name": None, "amp": False, "project": "runs/x: y",
            "seed": 0, "tag": "123", "empty": ""}
    assert simple_yaml.parse(simple_yaml.dump(args)) == args
    with pytest.raises(ValueError, match="f.yaml:2"):
        simple_yaml.parse("a: 1\n  nested:\n", "f.yaml")
    with pytest.raises(ValueError, match="f.yaml:1: .*beyond the simple YAML"):
        simple_yaml.parse("a: {x: 1}\n", "f.yaml")


def _yolo_split(root, split, count):
    for i in range(count):
        _write_png(root / "images" / split / f"{split}{i}.png", 20, 40)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{split}{i}.txt").write_text("1 0.5 0.5 0.5 0.5\n")


def test_open_dataset_reads_an_ultralytics_data_yaml(tmp_path):
    from tritonvision.data import split_is_shared

    root = tmp_path / "ds"
    _yolo_split(root, "train", 3)
    _yolo_split(root, "val", 2)
    (tmp_path / "data.yaml").write_text("path: ds\ntrain: images/train\nval: images/val\n"
                                        "names: [cat, dog]\n")
    train = open_dataset(str(tmp_path / "data.yaml"), "det", "train")
    val = open_dataset(str(tmp_path / "data.yaml"), "det", "val")
    assert isinstance(train, YoloDetection) and (len(train), len(val)) == (3, 2)
    assert train.classes == ("cat", "dog") and train[0][1]["labels"].tolist() == [1]
    assert not split_is_shared(str(tmp_path / "data.yaml"), "det", "val")

    (tmp_path / "train_only.yaml").write_text("path: ds\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n")
    assert split_is_shared(str(tmp_path / "train_only.yaml"), "det", "val")
    (tmp_path / "bad.yaml").write_text("path: ds\ntrain: images/train\nnames: {0: cat}\n")
    with pytest.raises(ValueError, match="bad.yaml:3"):
        open_dataset(str(tmp_path / "bad.yaml"), "det", "train")
    (tmp_path / "gaps.yaml").write_text("path: ds\ntrain: images/train\nnames:\n  0: cat\n  2: dog\n")
    with pytest.raises(ValueError, match="class indices 0..1"):
        open_dataset(str(tmp_path / "gaps.yaml"), "det", "train")
    (tmp_path / "missing.yaml").write_text("train: nowhere/images\n")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_dataset(str(tmp_path / "missing.yaml"), "det", "train")


def test_split_is_shared_for_one_annotation_file_and_split_less_folders(tmp_path):
    from tritonvision.data import split_is_shared

    assert not split_is_shared("shapes", "seg", "val")
    _yolo_folder(tmp_path / "flat")
    assert split_is_shared(str(tmp_path / "flat"), "det", "val")
    for split in ("train", "valid"):
        _yolo_folder(tmp_path / "split" / split)
    assert not split_is_shared(str(tmp_path / "split"), "det", "val")
