"""``revact detdata``: write a YOLO-format detection dataset made from Fashion-MNIST."""

from __future__ import annotations

import argparse
import sys
import time

_EPILOG = """\
examples:
  revact detdata --out data/fmnist-det --train 2000 --val 400 --imgsz 160 --preview
  revact detdata --out data/fmnist-tiny --train 64 --val 16 --imgsz 96 --scale 0.75 1.5
  revact detdata --out data/fmnist-det --data-dir ~/fashion-mnist --format jpg --overwrite

what it writes (under --out):
  images/{train,val}/NNNNNN.png   RGB canvases holding 1..--max-objects pasted items
  labels/{train,val}/NNNNNN.txt   one `class cx cy w h` line per item (normalised, the tight
                                  box of the item's visible pixels)
  data.yaml                       absolute path, train/val folders, the 10 class names
  preview.png                     with --preview: a grid of validation images and boxes
Training images use Fashion-MNIST's train split, validation images its test split. The
same arguments write byte-identical files.

train on it:
  revact yolo train model=yolov8n.yaml data=data/fmnist-det/data.yaml imgsz=160
"""


def _run(args: argparse.Namespace) -> int:
    from revact.data.datasets import DataNotFoundError
    from revact.data.detection import estimate_bytes, write_detection_dataset, write_preview

    if not args.quiet:
        size = estimate_bytes(args.train + args.val, args.imgsz, args.format)
        print(f"writing {args.train} + {args.val} images of {args.imgsz} px "
              f"({args.format}, about {size / 2**20:,.1f} MiB) to {args.out}", flush=True)
    start = time.perf_counter()
    try:
        yaml_path = write_detection_dataset(
            args.out, data_dir=args.data_dir, n_train=args.train, n_val=args.val,
            imgsz=args.imgsz, max_objects=args.max_objects, scale=tuple(args.scale),
            max_overlap=args.max_overlap, seed=args.seed, image_format=args.format,
            download=args.download, overwrite=args.overwrite, progress=not args.quiet,
        )
    except (ValueError, FileExistsError, DataNotFoundError) as e:
        print(f"revact detdata: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.train} + {args.val} images in {time.perf_counter() - start:.1f}s; "
          f"data: {yaml_path}")
    if args.preview:
        print(f"preview: {write_preview(yaml_path.parent)}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detdata",
        help="write a YOLO detection dataset of Fashion-MNIST items on textured canvases",
        description="Paste randomly scaled Fashion-MNIST items onto textured RGB canvases, "
        "1 to --max-objects per image with little overlap, and write the images, YOLO label "
        "files and a data YAML that Ultralytics trains on as is. Deterministic: the same "
        "arguments give the same bytes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="data/fmnist-det",
                        help="output folder, created; must be empty unless --overwrite "
                             "(default: %(default)s). Writing more than 90%% of the free disk "
                             "space there is refused up front")
    parser.add_argument("--train", type=int, default=2000,
                        help="training images (default: %(default)s)")
    parser.add_argument("--val", type=int, default=400,
                        help="validation images (default: %(default)s)")
    parser.add_argument("--imgsz", type=int, default=160,
                        help="image side in pixels, at most 4096 (default: %(default)s)")
    parser.add_argument("--max-objects", type=int, default=4,
                        help="most items per image (default: %(default)s)")
    parser.add_argument("--scale", nargs=2, type=float, default=(0.75, 2.5),
                        metavar=("MIN", "MAX"),
                        help="random item scale range, of 28 px (default: 0.75 2.5)")
    parser.add_argument("--max-overlap", type=float, default=0.1,
                        help="most one box may cover of another, as a fraction of the "
                             "smaller box (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--format", choices=("png", "jpg"), default="png",
                        help="image format; jpg is ~10x smaller at 160 px (default: %(default)s)")
    parser.add_argument("--preview", action="store_true",
                        help="also draw OUT/preview.png: validation images with their boxes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the images, labels and data.yaml of an earlier write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    d = parser.add_argument_group("data")
    d.add_argument("--data-dir", default=None,
                   help="folder with the Fashion-MNIST IDX files (default: search "
                        "$REVACT_DATA_DIR, /usr/share/datasets/fashion-mnist, ~/.cache/revact)")
    d.add_argument("--no-download", dest="download", action="store_false",
                   help="never try torchvision's downloader")
    parser.set_defaults(func=_run)
