"""pocketnet_tf.data: face datasets in their real formats and the training input pipeline.

Modules (imported on demand; nothing heavy runs at import time):

- ``recordio``: MXNet RecordIO reader/writer and the insightface ``train.rec``/``property`` layout.
- ``folder``: folder-per-identity image trees.
- ``tfrecord``: TFRecord writer, random-access reader and converter.
- ``pipeline``: ``build_dataset`` (tf.data), ``DatasetInfo``, corrupt-record counting, the
  stratified search split.
- ``synthetic``: deterministic synthetic face identities written as a real record set plus a
  held-out verification ``.bin``.
- ``bin_file``: verification ``.bin`` files (restricted unpickler); ``preprocess``: normalisation,
  decoding, encoding; ``align``: face alignment.

CLI: ``python -m pocketnet_tf.data synth | convert | info`` (``--helpfull`` lists the flags).
"""
