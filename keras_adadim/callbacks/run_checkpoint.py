"""``RunCheckpoint``: the training state of a run, saved often enough that a
killed run resumes mid-epoch where it stopped.

Keras' ``BackupAndRestore`` restores at epoch granularity (a run killed in
epoch 7 repeats epoch 7 from its first batch, with weights from its middle)
and knows nothing about alpha's update history. This callback records the
exact position (epoch, step within the epoch, optimizer step), the weights
with the optimizer state and the model's alpha / beta / step counters
(``model.save_weights``), and the state of callbacks that keep history
(``AlphaUpdater``, ``RepresentationMonitor``). Each save writes a new
weights file and then, atomically, the state that points at it, so a kill
during a save leaves the previous checkpoint intact.
"""

import json
import os

import keras

STATE = "last.json"


def _atomic_json(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def read_state(directory):
    """The saved training state of ``directory`` (``None`` if there is none).

    Raises ``ValueError`` naming the file when it is unreadable.
    """
    path = os.path.join(directory, STATE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"Cannot read the checkpoint state {path}: {e}. Delete the "
            "checkpoint directory to start over."
        ) from e
    weights = os.path.join(directory, state.get("weights", ""))
    if not state.get("weights") or not os.path.exists(weights):
        raise ValueError(
            f"{path} points at the weights file {weights!r}, which is "
            "missing; the checkpoint is incomplete. Delete the checkpoint "
            "directory to start over."
        )
    state["weights_path"] = weights
    return state


class RunCheckpoint(keras.callbacks.Callback):
    """Save the run's training state every ``every_steps`` batches and at the
    end of every epoch into ``directory`` (``last.json`` and the
    ``step-*.weights.h5`` file it names).

    Args:
        directory: where ``last.weights.h5`` and ``last.json`` go.
        steps_per_epoch: batches per epoch of the run.
        every_steps: batches between mid-epoch saves (0: epoch ends only).
        stateful_callbacks: ``{name: callback}`` of callbacks with
            ``get_state()``; their state is stored with the checkpoint.
        epoch_offset_step: for a ``fit`` that runs the rest of a
            partially done epoch, the number of its batches already done.
    """

    def __init__(
        self,
        directory,
        steps_per_epoch,
        every_steps=50,
        stateful_callbacks=None,
        epoch_offset_step=0,
        extra_state=None,
    ):
        super().__init__()
        self.directory = directory
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_steps = int(every_steps or 0)
        self.stateful_callbacks = dict(stateful_callbacks or {})
        self.epoch_offset_step = int(epoch_offset_step)
        self.extra_state = extra_state if extra_state is not None else {}
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        step = self.epoch_offset_step + batch + 1
        if step % self.every_steps == 0 and step < self.steps_per_epoch:
            self.save(self._epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        # The partial-epoch offset applies to the first epoch only.
        self.epoch_offset_step = 0
        self.save(epoch + 1, 0)

    def save(self, epoch, step_in_epoch):
        """Write the state at (``epoch``, ``step_in_epoch``) atomically."""
        os.makedirs(self.directory, exist_ok=True)
        optimizer_step = int(
            keras.ops.convert_to_numpy(self.model.optimizer.iterations)
        )
        # A new weights file per save, then the state that points at it,
        # then the old file goes: a kill at any moment leaves a consistent
        # (state, weights) pair on disk.
        name = f"step-{optimizer_step:09d}.weights.h5"
        self.model.save_weights(
            os.path.join(self.directory, name), overwrite=True
        )
        previous = read_state(self.directory)
        state = {
            "weights": name,
            "epoch": int(epoch),
            "step_in_epoch": int(step_in_epoch),
            "steps_per_epoch": self.steps_per_epoch,
            "optimizer_step": optimizer_step,
            "callbacks": {
                key: cb.get_state()
                for key, cb in self.stateful_callbacks.items()
            },
            **self.extra_state,
        }
        _atomic_json(os.path.join(self.directory, STATE), state)
        if previous and previous.get("weights") not in (None, name):
            old = os.path.join(self.directory, previous["weights"])
            if os.path.exists(old):
                os.remove(old)


__all__ = ["RunCheckpoint", "read_state"]
