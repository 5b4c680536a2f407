"""ReSSL's relational loss."""

from keras import ops

from keras_adadim._validation import as_matrix
from keras_adadim.losses.swav import as_crops
from keras_adadim.losses.swav import soft_cross_entropy
from keras_adadim.metrics.entropy import l2_normalize_rows


def ressl_loss(student, teacher, queue, student_temperature=0.1,
               teacher_temperature=0.04):
    """The student's similarity distribution over a queue of past teacher
    embeddings matches the teacher's, sharpened::

        p_t[n] = softmax(<k_n, m_j>_j / T_t)        (stop-gradient)
        p_s[n] = softmax(<q_n, m_j>_j / T_s)
        L = 1/V sum_v  -1/b sum_n sum_j p_t[n, j] log p_s,v[n, j]

    with k the teacher's embeddings of the weak view, q the student's of
    each of the V strong crops and m_j the queue's rows, all
    L2-normalised (cosine similarities). ReSSL (Zheng et al., 2021,
    "ReSSL: relational self-supervised learning with weak augmentation",
    Eq. 3-5: T_t 0.04 < T_s 0.1, the weak view to the EMA teacher) as
    solo-learn's ``ressl_loss_func(q, k, queue, temperature_q,
    temperature_k)``; the average over several strong crops is ReSSL's
    multi-crop variant.

    Args:
        student: the student's embeddings of V crops, (b, F) each (or one).
        teacher: the teacher's embeddings (b, F) of the weak view.
        queue: (K, F) past teacher embeddings.
        student_temperature: T_s (0.1).
        teacher_temperature: T_t (0.04).

    Example:
    >>> e = np.eye(3, dtype="float32")
    >>> got = float(ressl_loss(e, e, e, 1.0, 1.0))
    >>> p = math.e / (math.e + 2)
    >>> round(got, 6) == round(-p * math.log(p) - 2 * (1 - p) / 2 * math.log((1 - p) / 2), 6)
    True
    """
    for name, value in (("student_temperature", student_temperature),
                        ("teacher_temperature", teacher_temperature)):
        if not float(value) > 0:
            raise ValueError(f"`{name}` must be > 0; got {value}.")
    student = [l2_normalize_rows(s) for s in as_crops(student, "student")]
    teacher = l2_normalize_rows(as_matrix(teacher, "teacher"))
    queue = l2_normalize_rows(as_matrix(queue, "queue"))
    f = teacher.shape[1]
    for name, x in (("student", student[0]), ("queue", queue)):
        if f is not None and x.shape[1] is not None and x.shape[1] != f:
            raise ValueError(
                f"`{name}` rows must have the teacher's {f} features; got "
                f"shape {tuple(x.shape)}.")
    neg = ops.transpose(queue)
    target = ops.stop_gradient(
        ops.softmax(ops.matmul(teacher, neg) / float(teacher_temperature), axis=-1))
    losses = [soft_cross_entropy(target, ops.matmul(q, neg) / float(student_temperature))
              for q in student]
    return sum(losses) / float(len(losses))


__all__ = ["ressl_loss"]
