"""pocketnet_tf.eval."""
