from keras_adadim.models.adadim_model import AdaDimModel
from keras_adadim.models.adadim_model import SelfSupervisedModel
from keras_adadim.models.backbones import BACKBONES
from keras_adadim.models.backbones import get_backbone
from keras_adadim.models.backbones import representation_dim
from keras_adadim.models.heads import PROJECTORS
from keras_adadim.models.heads import mlp_head
from keras_adadim.models.heads import predictor
from keras_adadim.models.heads import projector
from keras_adadim.models.online_probe import OnlineLinearProbe
from keras_adadim.models.resnet import resnet
from keras_adadim.models.resnet import resnet18
from keras_adadim.models.resnet import resnet34
from keras_adadim.models.resnet import resnet50
from keras_adadim.models.vit import ClassToken
from keras_adadim.models.vit import PositionEmbedding
from keras_adadim.models.vit import TokenSelect
from keras_adadim.models.vit import vision_transformer
from keras_adadim.models.vit import vit_small
from keras_adadim.models.vit import vit_tiny

__all__ = [
    "BACKBONES",
    "PROJECTORS",
    "AdaDimModel",
    "ClassToken",
    "OnlineLinearProbe",
    "PositionEmbedding",
    "SelfSupervisedModel",
    "TokenSelect",
    "get_backbone",
    "mlp_head",
    "predictor",
    "projector",
    "representation_dim",
    "resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "vision_transformer",
    "vit_small",
    "vit_tiny",
]
