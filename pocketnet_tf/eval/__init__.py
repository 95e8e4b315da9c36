"""pocketnet_tf.eval: face-recognition benchmarks (see docs/evaluation.md).

- ``verification``: the insightface ``.bin`` pair protocol (10-fold, flip test, XNorm, TAR@FAR).
- ``roc``: ROC curve (scikit-learn-equivalent) and TAR@FAR read-outs.
- ``embedders``: one interface over Keras models, SavedModel directories and ``.tflite`` files.
- ``ijb``: IJB-B / IJB-C 1:1 template verification.
- ``megaface``: MegaFace devkit feature files and noise-list refinement.
- ``callbacks``: ``VerificationCallback`` for training.
- ``runner``: the ``python -m pocketnet_tf.evaluate`` configuration and run.
"""
