"""VICReg: variance-invariance-covariance regularisation (Bardes et al.)."""

import keras
from keras import ops

from keras_adadim import _backend as hot
from keras_adadim._validation import as_matrix, check_same_shape


def _dof(z):
    """b - 1 for the unbiased estimates: a Python float when the batch size
    is static (no ops), else a tensor. The batch size may be dynamic (a
    traced partial batch); clamping at 1 keeps a traced batch of one finite,
    and AdaDimModel skips such a batch (eager calls reject it up front)."""
    b = z.shape[-2]
    if b is not None:
        return float(max(b - 1, 1))
    n = ops.cast(ops.shape(z)[-2], "float32")
    return ops.maximum(n - 1.0, 1.0)


def _mean_all(x, scale=1.0):
    """``scale * ops.mean(x)``, as a sum times a Python constant when the
    shape is static (one Keras dispatch less on eager PyTorch)."""
    n = 1
    for d in x.shape:
        if d is None:
            return ops.mean(x) * scale
        n *= d
    return hot.hot_sum(x) * (scale / n)


def uses_sample_gram(b, f):
    """Whether VICReg's covariance term of a batch of ``b`` rows of width
    ``f`` is taken from the b x b Gram matrix of the centred rows (b < f:
    b^2 F multiply-adds a view) rather than the F x F covariance (b F^2).
    With the paper's CIFAR head (b = 256, F = 2048) the F x F product costs
    8x as many; ``b`` is None when the batch size is only known at run
    time."""
    return b is not None and b < f


def centre_views(zs):
    """``(zc, mean)``: the rows of each view of ``zs`` (2, b, F) minus the
    view's mean row (2, 1, F)."""
    b = zs.shape[-2]
    if b is None:
        mean = ops.mean(zs, axis=-2, keepdims=True)
    else:
        mean = hot.hot_sum(zs, axis=-2, keepdims=True) * (1.0 / b)
    return zs - mean, mean


def vicreg_of_views(zs, epsilon=1e-4, centred=None, sample_gram=None,
                    views=None, weights=None):
    """The three unweighted VICReg terms (:func:`vicreg_components`) of the
    two views stacked as ``zs`` (2, b, F), float32, unchecked: both views go
    through one chain of ops (half the op launches of one chain per view;
    AdaDim's step passes its two views stacked). Per view::

        v(z) = mean_j max(0, 1 - sqrt(Var_j(z) + eps))      (unbiased Var)
        c(z) = (1/F) sum_{i != j} C_ij^2,   C = zc^T zc / (b - 1)

    ``sum_{i != j} C_ij^2`` is taken the cheaper way (:func:`off_diagonal_mass`).
    ``centred`` (``centre_views(zs)``) and ``sample_gram`` (``zc zc^T``,
    (2, b, b)) may be passed by a caller that already holds them, and
    ``views`` = ``(z1, z2)``, the two (b, F) views ``zs`` stacks: the
    invariance term then reads them instead of slicing ``zs`` (on
    TensorFlow without XLA the two slices and their gradients cost 4x the
    term itself: 7.4 vs 1.3 ms at b = 256, F = 2048).

    With ``weights`` = (lambda, mu, nu) it returns the loss ``lambda s + mu
    v + nu c`` (:func:`weighted_vicreg`) instead, each weight folded into
    its term's normalisation: on eager PyTorch every scalar op is a Keras
    dispatch and a backward node, which cost more than the arithmetic.
    """
    f = zs.shape[-1]
    zc, _ = centre_views(zs) if centred is None else centred
    dof = _dof(zs)
    sq = hot.hot_sum(zc * zc, axis=-2)  # (2, F): (b - 1) Var_j
    std = ops.sqrt(sq / dof + epsilon)
    shortfall = hot.hot_sum(ops.relu(1.0 - std))  # F (v(z1) + v(z2))
    off = off_diagonal_mass(zc, sq, dof, sample_gram)
    z1, z2 = (zs[0], zs[1]) if views is None else views
    diff = z1 - z2
    if weights is not None:
        sim, var, cov = weights
        return (_mean_all(diff * diff, sim) + shortfall * (var / f)
                + off * (cov / f))
    return {
        "invariance": _mean_all(diff * diff),
        "variance": shortfall * (1.0 / f),
        "covariance": off / f,
    }


def off_diagonal_mass(zc, sq, dof, sample_gram=None):
    """``sum_{i != j} C_ij^2`` summed over the views of ``zc`` (..., b, F),
    ``C = zc^T zc / dof``; ``sq`` is ``sum_rows zc^2`` (..., F).

    When ``b >= F`` (or b is unknown and turns out so) the F x F covariance
    is formed and its diagonal masked out: every C_ij keeps its own float32
    precision. When ``b < F`` it is ``(||zc zc^T||_F^2 - sum_j sq_j^2) /
    dof^2`` (``||C||_F = ||zc zc^T||_F / dof``), from the b x b Gram matrix
    ``sample_gram`` (made here if not given). That difference is exact to
    float32 round-off of ``sum_j Var_j^2``, the diagonal's mass. When the
    features vary about equally, as VICReg's variance term drives them, the
    off-diagonal mass is at least ``(F - b + 1) / (b - 1)`` times the
    diagonal's (C has rank < b) and c(z) keeps ~1e-7 relative precision.
    When features have all but died (a few live, the rest ~1e-3 of them),
    c(z) is tiny against the diagonal and keeps only that absolute
    precision (1e-6 of ``sum Var^2 / F`` in the tests, against a loss
    dominated by the variance term).
    """
    b, f = zc.shape[-2], zc.shape[-1]
    if sample_gram is None and not uses_sample_gram(b, f):
        if b is not None:
            return _off_diagonal_via_features(zc, dof)
        # Batch size known only when the step runs (a TF graph traced for
        # any batch): both ways are traced, one runs.
        return ops.cond(
            ops.shape(zc)[-2] < f,
            lambda: _off_diagonal_via_samples(zc, sq, dof),
            lambda: _off_diagonal_via_features(zc, dof),
        )
    return _off_diagonal_via_samples(zc, sq, dof, sample_gram)


def _off_diagonal_via_features(zc, dof):
    f = zc.shape[-1]
    cov = ops.matmul(ops.swapaxes(zc, -1, -2), zc) / dof
    return ops.sum(ops.square(cov * (1.0 - ops.eye(f, dtype=cov.dtype))))


def _off_diagonal_via_samples(zc, sq, dof, sample_gram=None):
    if sample_gram is None:
        sample_gram = zc @ hot.hot_swapaxes(zc, -1, -2)
    full = hot.hot_sum(sample_gram * sample_gram)
    return (full - hot.hot_sum(sq * sq)) / (dof * dof)


def vicreg_components(z1, z2, epsilon=1e-4, check_values=True):
    """The three unweighted VICReg terms of a batch::

        invariance s = mean over all b*F entries of (z1 - z2)^2
        variance     = v(z1) + v(z2),  v(z) = mean_j relu(1 - sqrt(Var_j z + eps))
        covariance   = c(z1) + c(z2),  c(z) = (1/F) sum_{i!=j} C_ij(z)^2

    Variance and covariance are unbiased (divide by b - 1), so b >= 2.
    ``check_values=False`` skips the NaN/Inf test of the inputs, which reads
    them on the host (a device sync per call on eager PyTorch): for a
    training step, whose bad batches the model's guard reports.
    Returns a dict with keys ``invariance``, ``variance``, ``covariance``.
    """
    z1, z2 = _two_views(z1, z2, check_values)
    return vicreg_of_views(ops.stack([z1, z2]), epsilon, views=(z1, z2))


def _two_views(z1, z2, check_values):
    if check_values:
        z1 = as_matrix(z1, "z1", min_rows=2)
        z2 = as_matrix(z2, "z2", min_rows=2)
    else:
        z1, z2 = ops.cast(z1, "float32"), ops.cast(z2, "float32")
    check_same_shape(z1, z2, "z1", "z2")
    return z1, z2


def weighted_vicreg(terms, sim_weight=25.0, var_weight=25.0, cov_weight=1.0):
    """``lambda s + mu v + nu c`` of :func:`vicreg_components`' terms."""
    return (
        sim_weight * terms["invariance"]
        + var_weight * terms["variance"]
        + cov_weight * terms["covariance"]
    )


def vicreg(
    z1,
    z2,
    sim_weight=25.0,
    var_weight=25.0,
    cov_weight=1.0,
    epsilon=1e-4,
    return_components=False,
    check_values=True,
):
    """VICReg loss, in the paper's convention (not halved, as solo-learn)::

        L = lambda * s + mu * [v(z1) + v(z2)] + nu * [c(z1) + c(z2)]

    with lambda = ``sim_weight`` = 25, mu = ``var_weight`` = 25,
    nu = ``cov_weight`` = 1; see :func:`vicreg_components` for s, v and c.

    Args:
        z1, z2: embeddings of the two views, (b, F) with b >= 2.
        return_components: also return the dict of unweighted terms.
        check_values: test the inputs for NaN/Inf (see
            :func:`vicreg_components`).

    Returns:
        The scalar loss, or ``(loss, components)``.
    """
    if return_components:
        terms = vicreg_components(z1, z2, epsilon, check_values)
        return weighted_vicreg(terms, sim_weight, var_weight, cov_weight), terms
    # The weights folded into the terms, as in AdaDim's step (same
    # round-off: VICReg is AdaDim at alpha = 0 bit for bit).
    z1, z2 = _two_views(z1, z2, check_values)
    return vicreg_of_views(
        ops.stack([z1, z2]), epsilon, views=(z1, z2),
        weights=(sim_weight, var_weight, cov_weight))


@keras.saving.register_keras_serializable(package="keras_adadim")
class VICReg(keras.losses.Loss):
    """``keras.losses.Loss`` wrapper of :func:`vicreg`; call as
    ``VICReg()(z1, z2)``."""

    def __init__(
        self,
        sim_weight=25.0,
        var_weight=25.0,
        cov_weight=1.0,
        epsilon=1e-4,
        name="vicreg",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.sim_weight = sim_weight
        self.var_weight = var_weight
        self.cov_weight = cov_weight
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        return vicreg(
            y_true,
            y_pred,
            self.sim_weight,
            self.var_weight,
            self.cov_weight,
            self.epsilon,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
            "epsilon": self.epsilon,
        }
