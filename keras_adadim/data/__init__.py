"""Input pipelines: ``tf.data`` datasets of two views that ``fit`` consumes on
every backend, and the bundled offline dataset (scikit-learn's digits)."""

from keras_adadim.data.digits import digits_views
from keras_adadim.data.digits import load_digits
from keras_adadim.data.pipeline import two_view_dataset

__all__ = ["digits_views", "load_digits", "two_view_dataset"]
