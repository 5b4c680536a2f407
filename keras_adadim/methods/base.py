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

**Contract for ``forward`` / ``targets``:** every tensor they return has one
row per image of the batch (leading axis = batch), so the model can gather
any method's outputs over replicas without knowing their names. They must
include ``r1``, ``r2`` (the representations of the first two views: the
online probe reads them); ``valid`` and ``views`` are the model's names.

``step`` is a :class:`Step`: ``training`` (bool) and ``progress`` (fraction
of the planned training steps done, a float32 scalar tensor).
"""

import keras


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

    def setup(self, encoder, projector):
        """Called once by the model with its networks, before the first
        call: create what depends on them (teacher copies, predictor)."""

    def forward(self, views, encoder, projector, training):
        raise NotImplementedError

    def targets(self, rows, views, encoder, projector, step):
        """The target branch (teacher) of a step; runs in ``compute_loss``,
        outside the mixed-precision autocast of ``call``, so EMA weights stay
        float32. Default: none."""
        return {}

    def loss_terms(self, rows, step):
        raise NotImplementedError

    def combine(self, terms, step):
        """The loss from the terms; default: their sum."""
        return sum(terms[name] for name in self.term_names)

    def logs(self, step):
        """Scalars to log besides the terms (names in ``log_names``)."""
        return {}

    def update_state(self, rows, step, valid):
        """After the loss: update state from the (global) batch, e.g. push a
        queue; ``valid`` is False for a skipped batch."""

    def ensure_built(self, rows, views):
        """Create state whose shape depends on the data (called in the
        model's first, building call)."""

    def build(self, input_shape=None):
        self.built = True

    def frozen_variables(self):
        """Variables the optimizer must not train although batch norm must
        treat their layers as trainable: an EMA teacher's."""
        from keras_adadim.methods.components import EMATeacher

        return [v for layer in self._flatten_layers()
                if isinstance(layer, EMATeacher) for v in layer.variables]


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
    embedding size to itself."""
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
