"""Former home of the precision helpers, now :mod:`pocketnet_tf.fitting.precision` (shared by
search and training); kept so code importing ``pocketnet_tf.train.precision`` keeps working."""

from pocketnet_tf.fitting.precision import (  # noqa: F401 - re-exported
    PRECISIONS, check_precision, float32_copy, needs_loss_scaling, optimizer_options, precision_scope,
)
