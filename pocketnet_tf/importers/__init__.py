"""pocketnet_tf.importers."""
