"""Runs the pure-Java core's JUnit 4 suite (android_demo/core) on the JDK, as CI does."""

import re

from tests.android import jvm


def test_junit_suite_runs_every_test_and_passes(java_core):
    proc = jvm.run_junit(java_core)
    summary = re.search(r"^OK \((\d+) tests?\)$", proc.stdout, re.M)
    assert proc.returncode == 0 and summary, f"JUnit failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    # Every @Test method in the sources ran (a class missing from the run would lower the count).
    assert int(summary.group(1)) == jvm.count_test_methods()


def test_every_junit_class_is_found():
    names = jvm.test_classes()
    for expected in ("JsonTest", "NpyArrayTest", "GalleryTest", "BlazeFaceTest", "AffineWarpTest"):
        assert f"org.pocketnet.core.{expected}" in names
