"""pocketnet_tf.data: face datasets in their real formats and the training input pipeline.

Modules (imported on demand; nothing heavy runs at import time):

- ``recordio``: MXNet RecordIO reader/writer and the insightface ``train.rec``/``property`` layout.
- ``folder``: folder-per-identity image trees.
- ``tfrecord``: TFRecord framing, writer, random-access reader, the Example schema.
- ``shards``: TFRecord shard sets (manifest, index), the scalable training format.
- ``convert``: any dataset -> a shard set or one ``.tfrecord`` file.
- ``sources``: open and validate a dataset location, the decode probe.
- ``corrupt``: the per-record count of skipped records.
- ``pipeline``: ``build_dataset`` (tf.data), ``DatasetInfo``, the stratified search split;
  ``stages``: its tf.data stages (readers, native decoding, augmentation).
- ``throughput``: ``python -m pocketnet_tf.benchmark input``.
- ``synthetic``: deterministic synthetic face identities written as a real record set plus a
  held-out verification ``.bin``.
- ``bin_file``: verification ``.bin`` files (restricted unpickler); ``preprocess``: normalisation,
  decoding, encoding; ``align``: face alignment.

CLI: ``python -m pocketnet_tf.data synth | convert | info`` (``--helpfull`` lists the flags).
"""
