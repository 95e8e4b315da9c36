"""Former home of :class:`TorchSGD`, now :mod:`pocketnet_tf.fitting.torch_sgd` (shared by search
and training). Kept so code importing ``pocketnet_tf.train.optimizer`` keeps working; a saved
``.keras`` file names the class by its registered name ``pocketnet_tf>TorchSGD``, which did not
change, so files saved before the move load as before."""

from pocketnet_tf.fitting.torch_sgd import TorchSGD, all_finite  # noqa: F401 - re-exported
