import pytest

from tests.android import jvm


@pytest.fixture(scope="session")
def java_core(tmp_path_factory):
    """The Java core compiled once per session: (main classes, test classes)."""
    return jvm.compile_core(tmp_path_factory.mktemp("java_core"))
