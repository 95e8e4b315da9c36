"""The browser demo (``web_demo/``): serve it with a bundle on 127.0.0.1, or build a folder to host.

    python -m pocketnet_tf.web_demo serve --bundle=DIR [--port=8000]
    python -m pocketnet_tf.web_demo build --bundle=DIR --out=SITE
"""
