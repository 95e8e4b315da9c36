"""Shared pytest set-up.

TensorFlow is configured once per process: two logical CPU devices (so MirroredStrategy can be
tested on one CPU) and quiet logs. Nothing here downloads anything.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def _configure_tf():
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
        )
    except RuntimeError:
        # Already initialised (e.g. a test module touched TF first): keep what is there.
        pass


_configure_tf()


def pytest_addoption(parser):
    parser.addoption("--fuzz", action="store_true", default=False,
                     help="run the Hypothesis fuzz tests (tests/test_fuzz.py) 50x longer, randomised")


def pytest_configure(config):
    # Read by tests/test_fuzz.py at import time (collection comes after this hook).
    if config.getoption("--fuzz"):
        os.environ["POCKETNET_FUZZ"] = "1"


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    # Only tests that built Keras objects need a reset, and a full garbage collection per test
    # (free_memory=True) costs ~1 s here: name scopes and uid counters are what must not leak.
    import sys

    keras = sys.modules.get("keras")
    if keras is not None:
        keras.backend.clear_session(free_memory=False)
