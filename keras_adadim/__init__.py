"""keras-adadim: self-supervised pre-training of image encoders with AdaDim,
for Keras 3 on TensorFlow, JAX and PyTorch.

The names below are imported on first use (PEP 562): ``import keras_adadim``
itself imports neither Keras nor a backend, so that the ``adadim`` command
line starts in well under a second. Touching any of the library's names
(``keras_adadim.AdaDimModel``, ``keras_adadim.losses``, ...) imports the
modules that register the package's layers, losses and optimizers (LARS,
...) for ``.keras`` loading, as importing the package used to.
"""

import importlib

__version__ = "0.1.0"

# Submodules reachable as attributes (``keras_adadim.hub``).
_SUBMODULES = ("callbacks", "hub", "losses", "methods", "metrics", "models",
               "optimizers", "presets", "zoo")

# Names re-exported from submodules: name -> module that defines it.
_EXPORTS = {
    "METHODS": "keras_adadim.presets",
    "AdaDimModel": "keras_adadim.models",
    "SelfSupervisedModel": "keras_adadim.models",
    "AlphaUpdater": "keras_adadim.callbacks",
    "RepresentationMonitor": "keras_adadim.callbacks",
    "from_pretrained": "keras_adadim.hub",
    "push_to_hub": "keras_adadim.hub",
    "save_pretrained": "keras_adadim.hub",
}

# Modules whose import registers serialisable classes with Keras; imported
# together with any heavy name so that `keras.saving.load_model` finds them.
_REGISTERING = ("keras_adadim.losses", "keras_adadim.methods",
                "keras_adadim.models", "keras_adadim.optimizers",
                "keras_adadim.data.device_augment")

# presets and zoo are plain Python (no Keras); they need no registration.
_LIGHT = ("presets", "zoo")

__all__ = sorted([*_SUBMODULES, *_EXPORTS])


_registered = False


def register_serializables():
    """Import the modules that register keras-adadim's layers, losses and
    optimizers with Keras' serialisation, so that a plain
    ``keras.saving.load_model`` can read ``.keras`` files that use them."""
    global _registered
    if _registered:
        return
    _registered = True  # set first: these imports may touch the package
    for name in _REGISTERING:
        importlib.import_module(name)


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _LIGHT:
        register_serializables()
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted({*globals(), *__all__})


# Keras already loaded (``import keras`` came first): registering now costs
# no start-up time, and a plain ``keras.saving.load_model`` then works.
if "keras" in __import__("sys").modules:
    register_serializables()
