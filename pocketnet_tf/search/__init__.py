"""pocketnet_tf.search."""
