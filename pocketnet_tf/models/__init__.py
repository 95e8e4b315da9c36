"""pocketnet_tf.models."""
