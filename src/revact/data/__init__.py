"""Data for training and comparisons: Fashion-MNIST IDX files, ImageFolder trees, and a
YOLO detection set made from Fashion-MNIST."""

from revact.data.datasets import (
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    DataNotFoundError,
    DataSplits,
    ImageData,
    find_fashion_mnist,
    load_data,
    load_fashion_mnist,
    load_image_folder,
)
from revact.data.detection import write_detection_dataset, write_preview
from revact.data.idx import IDXError, read_idx, write_idx

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "DataNotFoundError",
    "DataSplits",
    "IDXError",
    "ImageData",
    "find_fashion_mnist",
    "load_data",
    "load_fashion_mnist",
    "load_image_folder",
    "read_idx",
    "write_detection_dataset",
    "write_idx",
    "write_preview",
]
