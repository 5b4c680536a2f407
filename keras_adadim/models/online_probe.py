"""Online linear probe trained on stop-gradient features during pre-training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_adadim")
class OnlineLinearProbe(keras.layers.Layer):
    """A softmax classifier on frozen features, updated by its own SGD.

    The probe must not shape the representation (its features are
    stop-gradient) and needs its own learning rate, so it is not trained by
    the model's optimizer. Its variables are non-trainable and each call of
    :meth:`update` applies one step of SGD with momentum using the exact
    gradient of the mean cross-entropy of a linear softmax model::

        P = softmax(F W + b),  G = (P - onehot(y)) / n
        dW = F^T G,  db = sum_i G_i
        v <- m v + dW;  W <- W - lr v      (and likewise for b)

    which is backend-independent and runs inside the compiled train step.
    """

    def __init__(self, num_classes, momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.momentum = float(momentum)

    def build(self, input_shape):
        d = input_shape[-1]
        c = self.num_classes

        def var(name, shape, init):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=init,
                trainable=False,
                dtype="float32",
            )

        self.kernel = var("kernel", (d, c), "glorot_uniform")
        self.bias = var("bias", (c,), "zeros")
        self.kernel_velocity = var("kernel_velocity", (d, c), "zeros")
        self.bias_velocity = var("bias_velocity", (c,), "zeros")

    def call(self, features):
        features = ops.cast(ops.stop_gradient(ops.convert_to_tensor(features)), "float32")
        return ops.matmul(features, self.kernel) + self.bias

    def update(self, features, labels, learning_rate):
        """One SGD step on (features, integer labels); returns
        ``(cross_entropy, accuracy)`` measured before the step."""
        f = ops.cast(ops.stop_gradient(ops.convert_to_tensor(features)), "float32")
        logits = ops.matmul(f, self.kernel) + self.bias
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        onehot = ops.one_hot(labels, self.num_classes, dtype="float32")
        log_p = ops.log_softmax(logits, axis=-1)
        loss = -ops.mean(ops.sum(onehot * log_p, axis=-1))
        hits = ops.cast(ops.argmax(logits, axis=-1) == labels, "float32")
        g = (ops.exp(log_p) - onehot) / ops.cast(ops.shape(f)[0], "float32")
        grad_w = ops.stop_gradient(ops.matmul(ops.transpose(f), g))
        grad_b = ops.stop_gradient(ops.sum(g, axis=0))
        for var, vel, grad in (
            (self.kernel, self.kernel_velocity, grad_w),
            (self.bias, self.bias_velocity, grad_b),
        ):
            new_vel = self.momentum * vel + grad
            vel.assign(new_vel)
            var.assign(var - learning_rate * new_vel)
        return loss, ops.mean(hits)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "momentum": self.momentum,
        }
