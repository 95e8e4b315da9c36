"""pocketnet_tf.layers."""
