"""``model.fit`` over whole epochs with an exact resume point.

Every epoch is exactly ``steps_per_epoch`` batches from ``epoch_dataset(epoch)`` (the data
order of an epoch is a function of the epoch number only), and the optimiser's iteration counter
says how far training got. Resuming from global step ``g`` therefore means: skip the first
``g % steps_per_epoch`` batches of epoch ``g // steps_per_epoch`` and go on — the batches, the
learning rates and the teacher of every later step are the ones an uninterrupted run would use.
A shortened first epoch is its own ``fit`` call (Keras has no "partial epoch"); it ends with the
same epoch-end callbacks (checkpoint, teacher export, evaluation) as any other.
"""

from __future__ import annotations

import keras


def exact_epoch(dataset, steps_per_epoch: int):
    """``dataset`` repeated as needed and cut to exactly ``steps_per_epoch`` batches (a few
    corrupt records skipped by the pipeline must not shift later epochs)."""
    return dataset.repeat().take(steps_per_epoch)


def fit_epochs(model, epoch_dataset, *, epochs: int, steps_per_epoch: int, initial_step: int = 0,
               callbacks=(), verbose=1) -> list:
    """Trains from global step ``initial_step`` to ``epochs * steps_per_epoch``.

    Args:
      model: a compiled Keras model whose optimiser iteration counter equals ``initial_step``.
      epoch_dataset: ``epoch -> tf.data.Dataset`` of that epoch's batches (in a fixed order
        for a given epoch; at least ``steps_per_epoch`` batches or repeatable).
      epochs: total epochs.
      steps_per_epoch: steps per epoch.
      initial_step: global step to start from (a restored checkpoint's).
      callbacks: Keras callbacks for every ``fit`` call.
      verbose: Keras progress-bar mode.

    Returns:
      The ``History`` objects of the ``fit`` calls made (one or two).
    """
    steps_per_epoch = int(steps_per_epoch)
    total = int(epochs) * steps_per_epoch
    if not 0 <= initial_step <= total:
        raise ValueError(f"initial_step {initial_step} outside 0..{total}")
    iterations = int(model.optimizer.iterations.numpy()) if model.optimizer.built else 0
    if iterations != initial_step:
        raise ValueError(f"the optimiser is at step {iterations}, expected {initial_step}")
    first_epoch, done = divmod(int(initial_step), steps_per_epoch)
    histories = []
    callbacks = list(callbacks)
    if done:
        rest = steps_per_epoch - done
        data = exact_epoch(epoch_dataset(first_epoch), steps_per_epoch).skip(done)
        histories.append(model.fit(
            data, initial_epoch=first_epoch, epochs=int(epochs), steps_per_epoch=rest,
            callbacks=callbacks + [StopAfterEpoch()], verbose=verbose,
        ))
        first_epoch += 1
    if first_epoch < epochs:
        stream = exact_epoch(epoch_dataset(first_epoch), steps_per_epoch)
        for epoch in range(first_epoch + 1, int(epochs)):
            stream = stream.concatenate(exact_epoch(epoch_dataset(epoch), steps_per_epoch))
        histories.append(model.fit(
            stream, initial_epoch=first_epoch, epochs=int(epochs), steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=verbose,
        ))
    return histories


class StopAfterEpoch(keras.callbacks.Callback):
    """Ends ``fit`` after the current epoch (used for the shortened first epoch of a resume)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True
