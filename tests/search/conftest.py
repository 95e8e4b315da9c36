"""Fixtures shared by the search tests."""

import keras
import pytest


@pytest.fixture
def float64():
    """Keras float type float64 for the test (finite-difference checks need it), restored after."""
    old = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(old)
