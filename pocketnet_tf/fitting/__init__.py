"""What search and training share to fit a model (neither stage owns it, both import it):

- :mod:`~pocketnet_tf.fitting.torch_sgd`: :class:`TorchSGD`, SGD with PyTorch's update rule,
  clipping after the cross-replica sum and dynamic loss scaling (the weight optimiser of both);
- :mod:`~pocketnet_tf.fitting.precision`: ``--precision`` (dtype policies, loss-scaling options);
- :mod:`~pocketnet_tf.fitting.guard`: the divergence guard (non-finite loss, gradient, weight);
- :mod:`~pocketnet_tf.fitting.checkpoints`: crash-safe checkpoints and their restore;
- :mod:`~pocketnet_tf.fitting.loop`: ``model.fit`` over whole epochs with an exact resume point.

``pocketnet_tf.train.optimizer``, ``.precision``, ``.guard``, ``.loop`` and ``.callbacks`` still
re-export these names for code written before they moved here.
"""
