"""Revact where users already work: any model, Ultralytics YOLO, timm, torchvision, ONNX."""
