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

import math
import os
import time

import keras
import numpy as np

from keras_adadim.run_directory import CHECKPOINT_STATE as STATE
from keras_adadim.run_directory import atomic_save
from keras_adadim.run_directory import atomic_write_json
from keras_adadim.run_directory import read_json


def read_state(directory):
    """The saved training state of ``directory`` (``None`` if there is none).

    Raises ``ValueError`` naming the file when it is unreadable.
    """
    path = os.path.join(directory, STATE)
    if not os.path.exists(path):
        return None
    try:
        state = read_json(path, "checkpoint state")
    except ValueError as e:
        raise ValueError(
            f"{e}. Delete the checkpoint directory to start over.") from e
    if not isinstance(state, dict):
        raise ValueError(
            f"The checkpoint state {path} is not a JSON object. Delete the "
            "checkpoint directory to start over.")
    name = state.get("weights")
    weights = os.path.join(directory, name if isinstance(name, str) else "")
    if not name or not isinstance(name, str) or not os.path.exists(weights):
        raise ValueError(
            f"{path} points at the weights file {weights!r}, which is "
            "missing; the checkpoint is incomplete. Delete the checkpoint "
            "directory to start over."
        )
    state["weights_path"] = weights
    return state


class EpochLogs(keras.callbacks.Callback):
    """The logs of an epoch split across sessions, as if it had run in one.

    Keras logs, for each metric, its mean over the steps that one ``fit``
    call ran of the epoch; an epoch resumed at step ``s`` would log the mean
    of its last steps only. This callback (placed before the callbacks that
    read the epoch's logs) keeps the running means of the steps done so far
    (``partial()``, saved with a mid-epoch checkpoint) and, at the end of a
    resumed epoch, replaces each such metric by the mean over all its
    steps: ``(s * mean_before + k * mean_after) / (s + k)``. Only metrics
    logged per batch are merged (the monitor's epoch-end statistics are
    not); every batch of a run has the same size, so step means are the
    epoch's means.

    Args:
        resumed: ``partial()`` of the checkpoint the run resumes from
            (``{"steps": s, "means": {...}}``), or None.
    """

    def __init__(self, resumed=None):
        super().__init__()
        self._prior = resumed if resumed and resumed.get("steps") else None
        self._logs = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._logs, self._steps = None, 0

    def on_train_batch_end(self, batch, logs=None):
        # A reference only: converted when a checkpoint or the epoch's end
        # needs it.
        self._logs, self._steps = logs, batch + 1

    def partial(self):
        """``{"steps", "means"}`` of the epoch so far (prior sessions'
        steps included)."""
        means = {}
        for key, value in (self._logs or {}).items():
            try:
                value = float(np.asarray(keras.ops.convert_to_numpy(value)))
            except (TypeError, ValueError):
                continue
            means[key] = value
        steps = self._steps
        if self._prior:
            before = int(self._prior["steps"])
            old = self._prior.get("means", {})
            total = before + steps
            for key in set(means) | set(old):
                if key in means and key in old and math.isfinite(old[key]):
                    means[key] = (before * old[key] + steps * means[key]) \
                        / total
                elif key in old:
                    means[key] = old[key]
            steps = total
        return {"steps": int(steps), "means": means}

    def on_epoch_end(self, epoch, logs=None):
        if self._prior and logs is not None:
            for key, value in self.partial()["means"].items():
                if key in logs:
                    logs[key] = value
        self._prior = None


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
        extra_state: more entries of ``last.json``.
        epoch_logs: an ``EpochLogs`` callback; a mid-epoch save stores its
            ``partial()`` logs (``"epoch_logs"``), so that the resumed
            epoch logs the means over all its steps.
        train_seconds: training time of the run's earlier sessions; each
            save stores the cumulative time (``"train_seconds"``), see
            ``train_seconds()``.
    """

    def __init__(
        self,
        directory,
        steps_per_epoch,
        every_steps=50,
        stateful_callbacks=None,
        epoch_offset_step=0,
        extra_state=None,
        epoch_logs=None,
        train_seconds=0.0,
    ):
        super().__init__()
        self.directory = directory
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_steps = int(every_steps or 0)
        self.stateful_callbacks = dict(stateful_callbacks or {})
        self.epoch_offset_step = int(epoch_offset_step)
        self.extra_state = extra_state if extra_state is not None else {}
        self.epoch_logs = epoch_logs
        self.previous_seconds = float(train_seconds or 0.0)
        self._started = None
        self._epoch = 0
        self._last_step = 0

    def on_train_begin(self, logs=None):
        if self._started is None:  # the first `fit` of this session
            self._started = time.time()

    def session_seconds(self):
        """Seconds since this session's first ``fit`` started."""
        return 0.0 if self._started is None else time.time() - self._started

    def train_seconds(self):
        """The run's training time: earlier sessions (up to their last
        checkpoint) plus this one."""
        return self.previous_seconds + self.session_seconds()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._last_step = self.epoch_offset_step

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        step = self.epoch_offset_step + batch + 1
        # `steps_per_execution` k > 1: called after every k steps, so save
        # when the steps cross a multiple of `every_steps` (at the step
        # reached; a resume continues from the step saved).
        before = self._last_step
        self._last_step = step
        if (step // self.every_steps > before // self.every_steps
                and step < self.steps_per_epoch):
            # Never a checkpoint of a run that has seen a bad batch (the
            # model's guard reads the loss only every few batches).
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(
                    float(keras.ops.convert_to_numpy(loss))):
                return
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
        atomic_save(
            lambda tmp: self.model.save_weights(tmp, overwrite=True),
            os.path.join(self.directory, name))
        previous = read_state(self.directory)
        state = {
            "weights": name,
            "epoch": int(epoch),
            "step_in_epoch": int(step_in_epoch),
            "steps_per_epoch": self.steps_per_epoch,
            "optimizer_step": optimizer_step,
            "train_seconds": self.train_seconds(),
            "callbacks": {
                key: cb.get_state()
                for key, cb in self.stateful_callbacks.items()
            },
            **self.extra_state,
        }
        if step_in_epoch and self.epoch_logs is not None:
            state["epoch_logs"] = self.epoch_logs.partial()
        atomic_write_json(os.path.join(self.directory, STATE), state)
        if previous and previous.get("weights") not in (None, name):
            old = os.path.join(self.directory, previous["weights"])
            if os.path.exists(old):
                os.remove(old)


__all__ = ["EpochLogs", "RunCheckpoint", "read_state"]
