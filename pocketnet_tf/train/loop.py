"""Former home of the exact-resume epoch loop, now :mod:`pocketnet_tf.fitting.loop` (shared by
search and training); kept so code importing ``pocketnet_tf.train.loop`` keeps working."""

from pocketnet_tf.fitting.loop import StopAfterEpoch, exact_epoch, fit_epochs  # noqa: F401 - re-exported
