"""pocketnet_tf.export."""
