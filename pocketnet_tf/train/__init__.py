"""pocketnet_tf.train."""
