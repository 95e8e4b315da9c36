import pytest

from tests import factory
from tests.android import jvm


@pytest.fixture(scope="session")
def java_core(tmp_path_factory):
    """The Java core compiled once per session: (main classes, test classes)."""
    return jvm.compile_core(tmp_path_factory.mktemp("java_core"))


@pytest.fixture(scope="session")
def real_bundles(tmp_path_factory):
    """``{(mode, raw_input): bundle directory}`` written by the converter library."""
    root = tmp_path_factory.mktemp("bundles")
    return {variant: factory.export_bundle(root, *variant) for variant in factory.BUNDLE_VARIANTS}
