"""Reference networks with the activation as a parameter (``act_layer``) everywhere."""

from revact.models._layers import ConvBnAct, make_act
from revact.models._registry import create_model, list_models, register_model
from revact.models.mobilenetv2 import MobileNetV2, mbv2, mbv2_tiny
from revact.models.resnet import ResNet, resnet8, resnet14, resnet20

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
]
