"""RevCol + FPN inside torchvision's FCOS, RetinaNet and Faster R-CNN."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

import revact
from revact.data.detection import write_detection_dataset
from revact.data.synthetic import write_synthetic_idx
from revact.integrations.torchvision import RevColFPN, revcol_fpn_backbone
from revact.revcol import RevCol

NUM_CLASSES = 10  # Fashion-MNIST's; torchvision adds the background as label 0
SMALL = dict(channels=(8, 16, 32, 64), layers=(1, 1, 1, 1), num_subnet=2)
DETECTORS = {  # detector, its extra FPN block (torchvision's choice for it)
    "faster_rcnn": (FasterRCNN, "maxpool"),
    "retinanet": (RetinaNet, "p6p7"),
    "fcos": (FCOS, "p6p7"),
}


def _detector(name: str, imgsz: tuple[int, int]) -> torch.nn.Module:
    cls, extra = DETECTORS[name]
    backbone = revcol_fpn_backbone(RevCol(**SMALL, features_only=True), extra_blocks=extra,
                                   out_channels=32)
    return cls(backbone, num_classes=NUM_CLASSES + 1, min_size=min(imgsz), max_size=max(imgsz))


def _random_batch(g: torch.Generator) -> tuple[list[torch.Tensor], list[dict]]:
    images = [torch.rand(3, 96, 128, generator=g) for _ in range(2)]
    xy = torch.rand(2, 3, 2, generator=g) * torch.tensor([80.0, 50.0])
    wh = 16 + torch.rand(2, 3, 2, generator=g) * 30
    targets = [
        dict(boxes=torch.cat([xy[i], xy[i] + wh[i]], 1),
             labels=torch.randint(1, NUM_CLASSES + 1, (3,), generator=g))
        for i in range(2)
    ]
    return images, targets


def test_backbone_maps_names_and_channels():
    tiny = revcol_fpn_backbone("revcol_tiny", extra_blocks="p6p7", out_channels=64)
    assert tiny.returned_layers == (1, 2, 3) and tiny.out_channels == 64
    assert not hasattr(tiny.body, "cls")  # published sizes are built without a head
    fpn = revcol_fpn_backbone(RevCol(**SMALL, features_only=True), act_layer=None)
    maps = fpn(torch.randn(1, 3, 64, 96))
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [tuple(m.shape) for m in maps.values()] == [
        (1, 256, 16, 24), (1, 256, 8, 12), (1, 256, 4, 6), (1, 256, 2, 3), (1, 256, 1, 2)]
    with pytest.raises(ValueError, match="published size"):
        revcol_fpn_backbone(RevCol(**SMALL), act_layer="acon_c")
    with pytest.raises(ValueError, match="unknown RevCol"):
        revcol_fpn_backbone("revcol_huge")


def test_act_layer_reaches_every_block_of_a_published_size():
    fpn = revcol_fpn_backbone("revcol_tiny", act_layer="acon_c")
    assert any(isinstance(m, revact.AconC) for m in fpn.body.modules())
    assert not any(isinstance(m, torch.nn.GELU) for m in fpn.body.modules())


def test_checkpoint_and_trainable_columns(tmp_path):
    source = RevCol(**SMALL, num_classes=5)  # with a head, as released weights are
    path = tmp_path / "official.pth"
    torch.save({"model": source.state_dict()}, path)
    fpn = revcol_fpn_backbone(RevCol(**SMALL, features_only=True), checkpoint=path,
                              trainable_columns=1)
    for key, value in fpn.body.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key
    assert not any(p.requires_grad for p in fpn.body.stem.parameters())
    assert not any(p.requires_grad for p in fpn.body.subnet0.parameters())
    assert all(p.requires_grad for p in fpn.body.subnet1.parameters())
    sum(m.sum() for m in fpn.train()(torch.randn(1, 3, 64, 64)).values()).backward()
    assert all(p.grad is not None for p in fpn.body.subnet1.parameters())
    with pytest.raises(RuntimeError, match="does not fit"):
        revcol_fpn_backbone(RevCol(**SMALL | dict(num_subnet=3), features_only=True),
                            checkpoint=path)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_trains_and_infers(name):
    torch.manual_seed(0)
    model = _detector(name, (96, 128))
    images, targets = _random_batch(torch.Generator().manual_seed(0))
    losses = model.train()(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.backbone.body.parameters())
    with torch.no_grad():
        detections = model.eval()(images)
    assert len(detections) == 2
    for det in detections:
        assert set(det) >= {"boxes", "scores", "labels"} and det["boxes"].shape[1] == 4


def _load_yolo_split(root: Path, split: str) -> tuple[list[torch.Tensor], list[dict]]:
    """Images (float, [0, 1]) and torchvision targets (pixel ``xyxy`` boxes, labels + 1)."""
    images, targets = [], []
    for png in sorted((root / "images" / split).glob("*.png")):
        image = torch.from_numpy(np.array(Image.open(png).convert("RGB"))).permute(2, 0, 1)
        image = image.float() / 255
        h, w = image.shape[-2:]
        rows = torch.tensor([[float(v) for v in line.split()] for line in
                             (root / "labels" / split / f"{png.stem}.txt").read_text().splitlines()
                             if line.strip()]).reshape(-1, 5)
        cx, cy, bw, bh = (rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h)
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        images.append(image)
        targets.append(dict(boxes=boxes, labels=rows[:, 0].long() + 1))
    return images, targets


def test_fcos_learns_on_generated_detection_data(tmp_path):
    idx = write_synthetic_idx(tmp_path / "idx", n_train=200, n_test=100)
    root = write_detection_dataset(tmp_path / "det", data_dir=idx, n_train=16, n_val=8,
                                   imgsz=96, scale=(0.75, 1.5), download=False).parent
    images, targets = _load_yolo_split(root, "train")
    assert len(images) == 16 and all(len(t["boxes"]) for t in targets)
    torch.manual_seed(0)
    model = _detector("fcos", (96, 96)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = slice(0, 4)  # one fixed batch: five steps must fit it better
    totals = []
    for _ in range(6):
        loss = sum(model(images[batch], targets[batch]).values())
        assert torch.isfinite(loss)
        totals.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert totals[-1] < totals[0], totals
    with torch.no_grad():
        assert len(model.eval()(images[16 - 2:])) == 2


def test_revcolfpn_rejects_bad_levels():
    with pytest.raises(ValueError, match="returned_layers"):
        RevColFPN(RevCol(**SMALL, features_only=True), (2, 1), 32)
