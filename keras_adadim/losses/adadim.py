"""The AdaDim objective (SPEC: AdaDim; paper Eq. 5 and Algorithm 1)."""

import keras
from keras import ops

from keras_adadim.losses.nt_xent import nt_xent
from keras_adadim.losses.vicreg import vicreg
from keras_adadim.metrics.entropy import matrix_mutual_information

PAIRINGS = ("cross", "same")


def mutual_information_term(z1, z2, r1, r2, pairing="cross", order=2):
    """L_mut, the Renyi mutual information between embeddings and
    representations of a batch::

        cross (Algorithm 1):  L_mut = 1/2 [I(z1; r2) + I(z2; r1)]
        same:                 L_mut = 1/2 [I(z1; r1) + I(z2; r2)]

    ``I`` is :func:`keras_adadim.metrics.matrix_mutual_information` of
    Renyi order ``order``.
    """
    if pairing not in PAIRINGS:
        raise ValueError(
            f"`pairing` must be one of {PAIRINGS}; got {pairing!r}."
        )
    if pairing == "cross":
        pairs = ((z1, r2), (z2, r1))
    else:
        pairs = ((z1, r1), (z2, r2))
    return 0.5 * sum(
        matrix_mutual_information(z, r, order=order) for z, r in pairs
    )


def combine_adadim(vicreg_loss, nce_loss, mut, alpha, beta, mi_penalty=0.0):
    """The AdaDim combination of precomputed terms (paper Eq. 5)::

        L = (1 - beta) * [(1 - alpha) * L_VICReg + alpha * L_NCE]
            - beta * L_mut + mi_penalty * L_mut

    alpha = 0 is pure VICReg, alpha = 1 pure SimCLR; the minus sign on
    ``beta`` raises I(R; Z). ``mi_penalty`` (lambda) is the "+lambda I(R; Z)"
    term of the SimCLR+lambda / VICReg+lambda baselines, 0 for AdaDim.
    """
    ssl = (1.0 - alpha) * vicreg_loss + alpha * nce_loss
    return (1.0 - beta) * ssl - beta * mut + mi_penalty * mut


def adadim_loss(
    z1,
    z2,
    r1=None,
    r2=None,
    alpha=0.0,
    beta=0.0,
    temperature=0.1,
    sim_weight=25.0,
    var_weight=25.0,
    cov_weight=1.0,
    pairing="cross",
    order=2,
    mi_penalty=0.0,
    return_components=False,
):
    """The AdaDim loss of one batch::

        L = (1 - beta) [(1 - alpha) L_VICReg(z1, z2) + alpha L_NCE(z1, z2)]
            - beta L_mut(z, r) + mi_penalty L_mut(z, r)

    With ``beta = gamma * alpha`` ("adaptive beta", gamma = 1e-4) and
    ``alpha = ER(concat(z1, z2)) / min(2b, F)`` this is the paper's method;
    see :func:`combine_adadim`, :func:`~keras_adadim.losses.vicreg`,
    :func:`~keras_adadim.losses.nt_xent` and :func:`mutual_information_term`.

    Args:
        z1, z2: embeddings (b, F) of the two views.
        r1, r2: representations (b, d) of the two views; needed when
            ``beta != 0`` or ``mi_penalty != 0``.
        alpha, beta: mixing weights (floats or scalar tensors).
        return_components: also return a dict with ``vicreg``, ``nce``,
            ``mut`` and ``loss``.

    Example:
    >>> z1, z2 = np.random.rand(8, 4), np.random.rand(8, 4)
    >>> bool(np.isclose(adadim_loss(z1, z2, alpha=1.0), nt_xent(z1, z2)))
    True
    """
    v_loss = vicreg(z1, z2, sim_weight, var_weight, cov_weight)
    n_loss = nt_xent(z1, z2, temperature)
    needs_mut = not (_is_zero(beta) and _is_zero(mi_penalty))
    if needs_mut:
        if r1 is None or r2 is None:
            raise ValueError(
                "`r1` and `r2` (the encoder outputs) are required when "
                "`beta` or `mi_penalty` is non-zero: L_mut measures I(R; Z)."
            )
        mut = mutual_information_term(z1, z2, r1, r2, pairing, order)
    else:
        mut = ops.zeros((), dtype="float32")
    loss = combine_adadim(v_loss, n_loss, mut, alpha, beta, mi_penalty)
    if return_components:
        return loss, {"loss": loss, "vicreg": v_loss, "nce": n_loss, "mut": mut}
    return loss


def _is_zero(value):
    return isinstance(value, (int, float)) and value == 0


@keras.saving.register_keras_serializable(package="keras_adadim")
class AdaDimLoss(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`adadim_loss` with fixed
    alpha and beta, on embeddings only (no L_mut); call as
    ``AdaDimLoss(alpha=0.5)(z1, z2)``. The adaptive method with L_mut lives
    in :class:`keras_adadim.AdaDimModel`."""

    def __init__(
        self, alpha=0.5, temperature=0.1, name="adadim_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return adadim_loss(
            y_true, y_pred, alpha=self.alpha, temperature=self.temperature
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "temperature": self.temperature,
        }
