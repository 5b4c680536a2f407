from keras_adadim.models.adadim_model import METHODS
from keras_adadim.models.adadim_model import AdaDimModel
from keras_adadim.models.online_probe import OnlineLinearProbe

__all__ = ["METHODS", "AdaDimModel", "OnlineLinearProbe"]
