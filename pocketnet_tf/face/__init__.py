"""The desktop face pipeline, twin of the Android demo: detect, align, enrol, match, gallery.

* :mod:`pocketnet_tf.face.detect`   BlazeFace short-range detector (decoding, NMS, keypoint alignment)
* :mod:`pocketnet_tf.face.pipeline` photos -> faces -> aligned crops; the bundle's model as an embedder
* :mod:`pocketnet_tf.face.gallery`  the gallery file shared with the app (enrol, search, scores)
* :mod:`pocketnet_tf.face.commands` the library entries of ``align``, ``enrol`` and ``match``
* :mod:`pocketnet_tf.face.flags`, :mod:`pocketnet_tf.face.config`, ``__main__``: the command
  (``python -m pocketnet_tf.face`` or its user-facing name ``python -m pocketnet_tf.align``)
"""
