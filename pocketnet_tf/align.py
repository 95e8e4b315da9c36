"""``python -m pocketnet_tf.align [align|enrol|match]``: the user-facing name of the face command.

    python -m pocketnet_tf.align --in=photos/ --out=crops/
    python -m pocketnet_tf.align enrol --bundle=bundle/ --gallery=gallery.json --name=Ada --in=ada1.jpg,ada2.jpg
    python -m pocketnet_tf.align match --bundle=bundle/ --gallery=gallery.json --in=who.jpg

The code lives in :mod:`pocketnet_tf.face` (commands, flags, config, detector, gallery).
"""

if __name__ == "__main__":
    from pocketnet_tf.face.__main__ import run

    run()
