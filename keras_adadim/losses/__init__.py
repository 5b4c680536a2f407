"""AdaDim's and the compared methods' losses as pure ``keras.ops`` functions, plus ``keras.losses.Loss``
wrappers. One loss per module, the formula in each docstring."""

from keras_adadim.losses.adadim import AdaDimLoss
from keras_adadim.losses.adadim import adadim_loss
from keras_adadim.losses.adadim import combine_adadim
from keras_adadim.losses.adadim import mutual_information_term
from keras_adadim.losses.barlow_twins import BarlowTwinsLoss
from keras_adadim.losses.barlow_twins import barlow_twins
from keras_adadim.losses.deepcluster import deepclusterv2_loss
from keras_adadim.losses.dino import dino_loss
from keras_adadim.losses.info_nce import InfoNCE
from keras_adadim.losses.info_nce import info_nce
from keras_adadim.losses.moco import moco_info_nce
from keras_adadim.losses.negative_cosine import NegativeCosineSimilarity
from keras_adadim.losses.negative_cosine import negative_cosine_similarity
from keras_adadim.losses.nnclr import nearest_neighbours
from keras_adadim.losses.nnclr import nnclr
from keras_adadim.losses.nt_xent import NTXent
from keras_adadim.losses.nt_xent import nt_xent
from keras_adadim.losses.ressl import ressl_loss
from keras_adadim.losses.sinkhorn import sinkhorn_knopp
from keras_adadim.losses.swav import swav_loss
from keras_adadim.losses.vicreg import VICReg
from keras_adadim.losses.vicreg import vicreg
from keras_adadim.losses.vicreg import vicreg_components

__all__ = [
    "AdaDimLoss",
    "BarlowTwinsLoss",
    "InfoNCE",
    "NegativeCosineSimilarity",
    "NTXent",
    "VICReg",
    "adadim_loss",
    "barlow_twins",
    "deepclusterv2_loss",
    "dino_loss",
    "info_nce",
    "moco_info_nce",
    "nearest_neighbours",
    "negative_cosine_similarity",
    "nnclr",
    "combine_adadim",
    "mutual_information_term",
    "nt_xent",
    "ressl_loss",
    "sinkhorn_knopp",
    "swav_loss",
    "vicreg",
    "vicreg_components",
]
