"""``idx_bytes(array)``: an array as the bytes of an MNIST-format IDX file,
written independently of the reader under test (shared by the IDX tests)."""

import numpy as np

from keras_adadim.data import idx

_TYPE_CODES = {np.dtype(v).newbyteorder("="): k
               for k, v in idx.IDX_DTYPES.items()}


def idx_bytes(array):
    array = np.asarray(array)
    code = _TYPE_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(
        array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()
