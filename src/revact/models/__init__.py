"""Reference networks with the activation as a parameter (``act_layer``) everywhere, and
RevCol (the published sizes and ``revcol_nano``) by name."""

from revact.models._layers import ConvBnAct, make_act
from revact.models._registry import create_model, list_models, register_model
from revact.models.mobilenetv2 import MobileNetV2, mbv2, mbv2_tiny
from revact.models.resnet import ResNet, resnet8, resnet14, resnet20
from revact.models.revcol import revcol_nano

__all__ = [
    "ConvBnAct",
    "MobileNetV2",
    "ResNet",
    "create_model",
    "list_models",
    "make_act",
    "mbv2",
    "mbv2_tiny",
    "register_model",
    "resnet8",
    "resnet14",
    "resnet20",
    "revcol_nano",
]
