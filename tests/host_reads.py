"""``HostReads()``: counts, while active, every Python-side read of a
PyTorch tensor (``bool``, ``item``, ``float``, ... : a host sync on a GPU),
for the tests that a training step reads nothing on the host."""

import collections


class HostReads:
    """Counts PyTorch host reads (bool / item / float / int / index /
    tolist / numpy) of tensors while active."""

    NAMES = ("__bool__", "item", "__float__", "__int__", "__index__",
             "tolist", "numpy", "__array__")

    def __enter__(self):
        import torch

        self.counts = collections.Counter()
        self._saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}

        def counting(name, original):
            def read(tensor, *args, **kwargs):
                self.counts[name] += 1
                return original(tensor, *args, **kwargs)
            return read

        for n, original in self._saved.items():
            setattr(torch.Tensor, n, counting(n, original))
        return self

    def __exit__(self, *exc):
        import torch

        for n, original in self._saved.items():
            setattr(torch.Tensor, n, original)
