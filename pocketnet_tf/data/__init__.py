"""pocketnet_tf.data."""
