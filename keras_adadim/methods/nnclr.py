"""NNCLR: nearest-neighbour contrastive learning (Dwibedi et al., 2021)."""

import keras

from keras_adadim._validation import check_number
from keras_adadim.losses.nnclr import nnclr
from keras_adadim.methods import base
from keras_adadim.methods.components import FeatureQueue


@keras.saving.register_keras_serializable(package="keras_adadim")
class NNCLR(base.Method):
    """Each embedding's nearest neighbour in a support set of past
    embeddings replaces it as the positive
    (:func:`keras_adadim.losses.nnclr`)::

        L = 1/2 [ InfoNCE(NN(z1), p2) + InfoNCE(NN(z2), p1) ]

    After each step the batch's ``z1`` enters the FIFO support set
    (:class:`~keras_adadim.methods.components.FeatureQueue`; the global
    batch under ``tf.distribute``, in the same order on every replica).
    Defaults from solo-learn's CIFAR ``nnclr.yaml``: temperature 0.2, queue
    65,536, projector output 256, predictor hidden 4096. On small data use
    a queue of at most a few epochs' embeddings (the digits preset: 512).
    Logged term: ``nnclr``. The predictor is the shared part of
    ``keras_adadim.methods.base``.

    Args:
        temperature: tau.
        queue_size: rows in the support set.
        predictor_hidden_dim: hidden width of the default predictor.
        predictor: a predictor head to use instead (F -> F).
        seed: seed of the support set's initial (random unit) rows.
    """

    term_names = ("nnclr",)

    def __init__(self, temperature=0.2, queue_size=65536,
                 predictor_hidden_dim=4096, predictor=None, seed=0, **kwargs):
        kwargs.setdefault("name", "nnclr")
        super().__init__(**kwargs)
        self.temperature = check_number("temperature", temperature, 0,
                                        low_open=True)
        check_number("queue_size", queue_size, 1, integer=True)
        self.support = FeatureQueue(queue_size, seed=seed, name="support_set")
        self.predictor_hidden_dim = int(predictor_hidden_dim)
        self.predictor = predictor
        self.built = True

    def ensure_built(self, rows, views):
        if not self.support.built:
            self.support.build(rows["z1"].shape)

    def loss_terms(self, rows, step=None):
        return {"nnclr": nnclr(rows["z1"], rows["z2"], rows["p1"], rows["p2"],
                               self.support.queue, self.temperature)}

    def update_state(self, rows, step, valid):
        if step.training:
            self.support.push(rows["z1"], keep=valid)

    def get_config(self):
        return {**super().get_config(),
                "temperature": self.temperature,
                "queue_size": self.support.size,
                "seed": self.support.seed,
                **base.parts_config(self)}
