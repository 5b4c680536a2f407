"""AdaDim losses as pure ``keras.ops`` functions, plus ``keras.losses.Loss``
wrappers. One loss per module, the formula in each docstring."""

from keras_adadim.losses.adadim import AdaDimLoss
from keras_adadim.losses.adadim import adadim_loss
from keras_adadim.losses.adadim import combine_adadim
from keras_adadim.losses.adadim import mutual_information_term
from keras_adadim.losses.nt_xent import NTXent
from keras_adadim.losses.nt_xent import nt_xent
from keras_adadim.losses.vicreg import VICReg
from keras_adadim.losses.vicreg import vicreg
from keras_adadim.losses.vicreg import vicreg_components

__all__ = [
    "AdaDimLoss",
    "NTXent",
    "VICReg",
    "adadim_loss",
    "combine_adadim",
    "mutual_information_term",
    "nt_xent",
    "vicreg",
    "vicreg_components",
]
