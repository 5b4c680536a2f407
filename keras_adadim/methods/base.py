"""``Method``: what a self-supervised method declares.

A method is a Keras layer holding its own heads (predictor, prototypes) and
state (EMA teacher, queue, alpha), so all of it is tracked, saved in
``.keras`` files and restored on resume. The training model
(``keras_adadim.AdaDimModel``) owns everything methods share: the view
checks, the bad-batch guard, the one ``compute_loss`` that serves every
backend, global-batch gathering under ``tf.distribute``, the online probe,
the metric trackers and the step counters. Per step it calls, in order::

    rows = method.forward(views, encoder, projector, training)     # in `call`
    rows |= method.targets(rows, views, encoder, projector, step)  # teacher
    (rows gathered over replicas)
    terms = method.loss_terms(rows, step)
    loss = method.combine(terms, step)
    method.update_state(rows, step, valid)                         # queues

and before each epoch of ``fit``, ``method.on_epoch_begin(epoch)`` (per-epoch
work: DeepCluster v2's k-means, epoch-based schedules).

**Contract for ``forward`` / ``targets``:** every tensor they return has one
row per image of the batch (leading axis = batch), so the model can gather
any method's outputs over replicas without knowing their names. They must
include ``r1``, ``r2`` (the representations of the first two views: the
online probe reads them); ``valid``, ``views`` and ``index`` are the
model's names (``index``: each image's index in the training set, in the
rows of a method with ``needs_index``).

``step`` is a :class:`Step`: ``training`` (bool) and ``progress`` (fraction
of the planned training steps done, a float32 scalar tensor).

**Shared parts.** A method declares the parts it shares with others by
setting them in ``__init__``, and the default steps of :class:`Method` use
them, so a method's own file holds only what makes it that method (its loss,
defaults and settings):

- ``self.teacher``: an :class:`~keras_adadim.methods.components.EMATeacher`
  of encoder -> projector (BYOL, MoCo v3, AdaDim with ``momentum``).
  ``setup`` copies the networks, ``ensure_built`` builds the copies,
  ``targets`` moves it and adds ``r1t, r2t, z1t, z2t``, ``logs`` reports
  its momentum when ``"momentum"`` is in ``log_names``, and the model keeps
  its weights out of the optimizer (``frozen_variables``).
- ``self.predictor``: a head on the online embedding, run by ``forward``
  (``p1, p2``); with ``self.predictor_hidden_dim`` set and no predictor
  given, ``setup`` makes the default one (:func:`default_predictor`).

:func:`parts_config` gives these parts' ``get_config`` entries, and
``Method.from_config`` deserialises a saved ``predictor``.
"""

import keras

from keras_adadim.methods.components import EMATeacher


class Step:
    """What a method knows about the current step."""

    def __init__(self, training, progress):
        self.training = training
        self.progress = progress


class Method(keras.layers.Layer):
    """Base of the methods; override :meth:`forward` and :meth:`loss_terms`.

    Class attributes:
        num_views: views per image the method trains on.
        needs_planned_steps, adaptive, has_targets: see below.
        term_names: its loss terms (logged under these names).
        log_names: other scalars it logs (e.g. ``alpha``).
    """

    num_views = 2
    term_names = ()
    log_names = ()
    # True when a schedule (EMA momentum, alpha) needs the planned number of
    # training steps, which `fit` must then be able to tell.
    needs_planned_steps = False
    # True when alpha is set from the effective rank by `AlphaUpdater`.
    adaptive = False
    # True when `targets` adds a target branch (it then gets the views).
    has_targets = False
    # True when the method keeps per-image state: the batches must then
    # carry each image's index in the training set, `{"views": ...,
    # "index": i}`, which the model adds to the rows as `index`.
    needs_index = False
    # The shared parts a method may declare in `__init__` (module docstring):
    # `self.teacher`, `self.predictor` and `self.predictor_hidden_dim`. Read
    # with `getattr(self, name, None)`: on PyTorch a layer is a torch
    # Module, whose sub-layers a class attribute `teacher = None` would hide.
    predictor_hidden_dim = None

    def setup(self, encoder, projector):
        """Called once by the model with its networks, before the first
        call: create what depends on them. Default: the declared teacher's
        copies, then the default predictor when one is declared but not
        given."""
        if _teacher(self) is not None:
            self.teacher.setup(encoder, projector)
        if _predictor(self) is None and self.predictor_hidden_dim is not None:
            self.predictor = default_predictor(
                None, self.predictor_hidden_dim, encoder, projector,
                type(self).__name__)

    def forward(self, views, encoder, projector, training):
        """The online branch. Default: ``r1, r2, z1, z2`` of the first two
        views, and ``p1, p2`` when the method has a predictor."""
        return two_views_online(views, encoder, projector, _predictor(self), training)

    def targets(self, rows, views, encoder, projector, step):
        """The target branch (teacher) of a step; runs in ``compute_loss``,
        outside the mixed-precision autocast of ``call``, so EMA weights stay
        float32. Default: the declared teacher's ``r1t, r2t, z1t, z2t``
        (moved first, in training), else none."""
        if _teacher(self) is None:
            return {}
        return teacher_targets(self.teacher, views, encoder, projector, step)

    def loss_terms(self, rows, step):
        raise NotImplementedError

    def combine(self, terms, step):
        """The loss from the terms; default: their sum."""
        return sum(terms[name] for name in self.term_names)

    def logs(self, step):
        """Scalars to log besides the terms (names in ``log_names``).
        Default: the teacher's EMA momentum as ``momentum``, when that name
        is declared."""
        if _teacher(self) is not None and "momentum" in self.log_names:
            return {"momentum": self.teacher.momentum(step.progress)}
        return {}

    def update_state(self, rows, step, valid):
        """After the loss: update state from the (global) batch, e.g. push a
        queue; ``valid`` is False for a skipped batch."""

    def on_epoch_begin(self, epoch):
        """Called by ``AdaDimModel.fit`` before each epoch with Keras' epoch
        index (``initial_epoch`` onwards: a resumed run repeats the epoch it
        stopped in), outside the compiled step; what it assigns to variables
        the next steps see. Default: nothing."""

    def ensure_built(self, rows, views):
        """Create state whose shape depends on the data (called in the
        model's first, building call). Default: build the teacher's copies."""
        if _teacher(self) is not None:
            self.teacher.ensure_built(views[0].shape, rows["r1"].shape)

    def build(self, input_shape=None):
        self.built = True

    def frozen_variables(self):
        """Variables the optimizer must not train although batch norm must
        treat their layers as trainable: an EMA teacher's."""
        return [v for layer in self._flatten_layers()
                if isinstance(layer, EMATeacher) for v in layer.variables]

    @classmethod
    def from_config(cls, config):
        return super().from_config(deserialize_heads(config, ("predictor",)))


def embedding_dim(encoder, projector):
    """The projector's output size, from the networks' static shapes
    (``None`` when they do not tell it before a first call)."""
    inputs = getattr(encoder, "inputs", None)
    if not inputs:
        return None
    try:
        r_shape = encoder.compute_output_shape(tuple(inputs[0].shape))
        return int(projector.compute_output_shape(tuple(r_shape))[-1])
    except Exception:  # noqa: BLE001 - shapes unknown until called
        return None


def default_predictor(predictor, hidden_dim, encoder, projector, method):
    """``predictor`` if given, else the BYOL-style head
    (``keras_adadim.models.heads.predictor``) of ``hidden_dim`` mapping the
    embedding size to itself; ``method`` names the method in the error
    raised when that size is unknown."""
    if predictor is not None:
        return predictor
    # Imported here: keras_adadim.models imports the methods.
    from keras_adadim.models import heads

    dim = embedding_dim(encoder, projector)
    if dim is None:
        raise ValueError(
            f"{method} needs a predictor of the embedding size, which cannot "
            "be read from the encoder and projector before a first call. "
            "Give the encoder an input shape (keras.Input), or pass "
            "`predictor=keras_adadim.models.heads.predictor(output_dim=F)`."
        )
    return heads.predictor(hidden_dim=int(hidden_dim), output_dim=dim)


def parts_config(method):
    """The ``get_config`` entries of a method's declared shared parts: the
    teacher's ``base_momentum`` and ``final_momentum``, the default
    predictor's ``predictor_hidden_dim`` and the (serialised) ``predictor``."""
    config = {}
    if _teacher(method) is not None:
        config["base_momentum"] = method.teacher.base_momentum
        config["final_momentum"] = method.teacher.final_momentum
    if method.predictor_hidden_dim is not None:
        config["predictor_hidden_dim"] = method.predictor_hidden_dim
        predictor = _predictor(method)
        config["predictor"] = (
            None if predictor is None
            else keras.saving.serialize_keras_object(predictor))
    return config


def _teacher(method):
    return getattr(method, "teacher", None)


def _predictor(method):
    return getattr(method, "predictor", None)


def two_views_online(views, encoder, projector, predictor, training):
    """r, z (and p, when ``predictor``) of the first two views."""
    rows = {}
    for i, x in enumerate(views[:2], start=1):
        rows[f"r{i}"] = encoder(x, training=training)
        rows[f"z{i}"] = projector(rows[f"r{i}"], training=training)
        if predictor is not None:
            rows[f"p{i}"] = predictor(rows[f"z{i}"], training=training)
    return rows


def teacher_targets(teacher, views, encoder, projector, step):
    """Move an :class:`EMATeacher` (in training) and run it on the first two
    views: ``r1t, r2t, z1t, z2t``."""
    if step.training:
        teacher.update(encoder, projector, step.progress)
    out = {}
    for i, x in enumerate(views[:2], start=1):
        out[f"r{i}t"], out[f"z{i}t"] = teacher(x, training=step.training)
    return out


def deserialize_heads(config, keys):
    """``config`` with the serialised layers under ``keys`` deserialised."""
    config = dict(config)
    for key in keys:
        if config.get(key) is not None:
            config[key] = keras.saving.deserialize_keras_object(config[key])
    return config
