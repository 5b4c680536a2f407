"""VICReg: variance-invariance-covariance regularisation (Bardes et al.)."""

import keras
from keras import ops

from keras_adadim._validation import as_matrix, check_same_shape


def _dof(z):
    """b - 1 for the unbiased estimates. The batch size may be dynamic (a
    traced partial batch); clamping at 1 keeps a traced batch of one finite,
    and AdaDimModel skips such a batch (eager calls reject it up front)."""
    n = ops.cast(ops.shape(z)[-2], "float32")
    return ops.maximum(n - 1.0, 1.0)


def vicreg_of_views(zs, epsilon=1e-4):
    """The three unweighted VICReg terms (:func:`vicreg_components`) of the
    two views stacked as ``zs`` (2, b, F), float32, unchecked: both views go
    through one chain of ops (half the op launches of one chain per view;
    AdaDim's step passes its NT-Xent concatenation, reshaped). Per view::

        v(z) = mean_j max(0, 1 - sqrt(Var_j(z) + eps))      (unbiased Var)
        c(z) = (1/F) sum_{i != j} C_ij^2,   C = zc^T zc / (b - 1)

    The F x F covariance is formed and its diagonal masked out. (Not
    ``||zc zc^T||_F^2 - sum_j Var_j^2`` from the b x b Gram matrix, half the
    multiply-adds when b < F: near collapse, when C is almost diagonal, that
    difference cancels and lost 4e-3 of c(z) in a test, 1e-7 here.)
    """
    f = zs.shape[-1]
    zc = zs - ops.mean(zs, axis=-2, keepdims=True)
    dof = _dof(zs)
    sq = ops.sum(ops.square(zc), axis=-2)  # (2, F): (b - 1) Var_j
    std = ops.sqrt(sq / dof + epsilon)
    variance = 2.0 * ops.mean(ops.relu(1.0 - std))  # v(z1) + v(z2)
    cov = ops.matmul(ops.swapaxes(zc, -1, -2), zc) / dof
    off = ops.sum(ops.square(cov * (1.0 - ops.eye(f, dtype=cov.dtype))))
    return {
        "invariance": ops.mean(ops.square(zs[0] - zs[1])),
        "variance": variance,
        "covariance": off / f,
    }


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
    if check_values:
        z1 = as_matrix(z1, "z1", min_rows=2)
        z2 = as_matrix(z2, "z2", min_rows=2)
    else:
        z1, z2 = ops.cast(z1, "float32"), ops.cast(z2, "float32")
    check_same_shape(z1, z2, "z1", "z2")
    return vicreg_of_views(ops.stack([z1, z2]), epsilon)


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
    terms = vicreg_components(z1, z2, epsilon=epsilon, check_values=check_values)
    loss = weighted_vicreg(terms, sim_weight, var_weight, cov_weight)
    return (loss, terms) if return_components else loss


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
