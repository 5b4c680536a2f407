"""DINO's self-distillation loss: cross-entropy with a centred, sharpened
teacher."""

from keras import ops

from keras_adadim.losses.swav import as_crops
from keras_adadim.losses.swav import soft_cross_entropy


def dino_loss(student, teacher, center, student_temperature=0.1,
              teacher_temperature=0.04):
    """Every student crop predicts the centred, sharpened teacher output of
    every OTHER crop the teacher saw::

        P_t,i = softmax((t_i - c) / T_t)            (stop-gradient)
        L = 1/N sum_{i < A} sum_{v != i}  -1/b sum_n sum_k
                P_t,i[n, k] log softmax(s_v[n] / T_s)_k

    with ``s_v`` the student's logits of crop v (V crops), ``t_i`` the
    teacher's logits of the first A crops (DINO: the two global crops), c
    the centre and N = A (V - 1) the number of pairs. DINO (Caron et al.,
    2021, "Emerging properties in self-supervised vision transformers",
    Algorithm 1 and Sec. 3.1: centring and sharpening avoid collapse;
    ``DINOLoss`` of facebookresearch/dino, solo-learn's ``DINOLoss``):
    T_s = 0.1, T_t warmed up from 0.04 to 0.07 by the method, the centre an
    EMA (0.9) of the teacher's batch mean (kept by the method, over the
    global batch).

    Args:
        student: V crops' student logits, a sequence of (b, K) (or one).
        teacher: the first A <= V crops' teacher logits, (b, K) each.
        center: (K,) the centre subtracted from the teacher's logits.
        student_temperature: T_s.
        teacher_temperature: T_t (a float or a scalar tensor: a schedule).

    Example:
    >>> e = [np.eye(2, dtype="float32")] * 2
    >>> got = float(dino_loss(e, e, np.zeros(2, "float32"), 1.0, 1.0))
    >>> p = math.e / (math.e + 1)
    >>> round(got, 6) == round(-p * math.log(p) - (1 - p) * math.log(1 - p), 6)
    True
    """
    if not float(student_temperature) > 0:
        raise ValueError(
            f"`student_temperature` must be > 0; got {student_temperature}.")
    if isinstance(teacher_temperature, (int, float)) and not teacher_temperature > 0:
        raise ValueError(
            f"`teacher_temperature` must be > 0; got {teacher_temperature}.")
    student = as_crops(student, "student")
    teacher = as_crops(teacher, "teacher")
    center = ops.reshape(ops.cast(ops.convert_to_tensor(center), "float32"), (1, -1))
    k = student[0].shape[1]
    if len(student) < 2 or len(teacher) > len(student):
        raise ValueError(
            f"DINO needs at least 2 student crops and teacher outputs for at "
            f"most as many; got {len(student)} and {len(teacher)}.")
    if teacher[0].shape[1] != k or (k is not None and center.shape[1] != k):
        raise ValueError(
            f"The student's, teacher's and centre's sizes must agree (K = "
            f"{k}); got teacher {tuple(teacher[0].shape)} and centre "
            f"{tuple(center.shape[1:])}.")
    t_t = ops.cast(teacher_temperature, "float32")
    targets = [ops.stop_gradient(ops.softmax((t - center) / t_t, axis=-1))
               for t in teacher]
    losses = [soft_cross_entropy(q, s / float(student_temperature))
              for i, q in enumerate(targets)
              for v, s in enumerate(student) if v != i]
    return sum(losses) / float(len(losses))


__all__ = ["dino_loss"]
