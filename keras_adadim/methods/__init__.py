"""Self-supervised methods as small declarations (``Method`` layers) that the
one training model, ``keras_adadim.AdaDimModel``, trains.

``get_method("byol")`` builds a registered method
(``keras_adadim.presets.METHODS``); the classes can also be used directly::

    model = keras_adadim.AdaDimModel(encoder, projector, method=BYOL())

Writing your own: subclass :class:`Method`, implement ``forward`` and
``loss_terms`` (see ``keras_adadim/methods/base.py`` and the README).
"""

import importlib
import inspect

from keras_adadim.methods.adadim import AdaDim
from keras_adadim.methods.barlow_twins import BarlowTwins
from keras_adadim.methods.base import Method
from keras_adadim.methods.base import Step
from keras_adadim.methods.byol import BYOL
from keras_adadim.methods.components import EMATeacher
from keras_adadim.methods.components import FeatureQueue
from keras_adadim.methods.components import cosine_momentum
from keras_adadim.methods.deepcluster import DeepClusterV2
from keras_adadim.methods.dino import DINO
from keras_adadim.methods.mocov2plus import MoCoV2Plus
from keras_adadim.methods.mocov3 import MoCoV3
from keras_adadim.methods.nnclr import NNCLR
from keras_adadim.methods.ressl import ReSSL
from keras_adadim.methods.simsiam import SimSiam
from keras_adadim.methods.swav import SwAV


def method_class(name):
    """The ``Method`` class of a registered method name."""
    from keras_adadim import presets

    presets.check_method_name(name)
    module, _, cls = presets.METHODS[name]["class"].rpartition(".")
    return getattr(importlib.import_module(module), cls)


def get_method(name, **kwargs):
    """A new ``Method`` of the registered ``name`` (``adadim``, ``simclr``,
    ``byol``, ...): the registry's fixed arguments (SimCLR's alpha = 1, ...)
    plus ``kwargs``. An argument the method does not take raises a
    ``ValueError`` naming it."""
    from keras_adadim import presets

    cls = method_class(name)
    fixed = presets.METHODS[name]["kwargs"]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(kwargs) - accepted - {"name"})
    clash = sorted(k for k in kwargs if k in fixed and kwargs[k] != fixed[k])
    if unknown or clash:
        what = ", ".join(f"`{k}`" for k in unknown + clash)
        raise ValueError(
            f"Method {name!r} does not take {what}"
            + (f" ({name!r} fixes {', '.join(clash)})" if clash else "")
            + f"; its arguments: {', '.join(sorted(accepted - set(fixed)))}."
        )
    return cls(**{**fixed, **kwargs})


__all__ = [
    "AdaDim",
    "BYOL",
    "BarlowTwins",
    "DINO",
    "DeepClusterV2",
    "EMATeacher",
    "FeatureQueue",
    "Method",
    "MoCoV2Plus",
    "MoCoV3",
    "NNCLR",
    "ReSSL",
    "SimSiam",
    "Step",
    "SwAV",
    "cosine_momentum",
    "get_method",
    "method_class",
]
