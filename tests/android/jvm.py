"""Compiling and running the Android demo's pure-Java core with the JDK and Debian's junit4."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "android_demo" / "core"
JUNIT_JAR = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))
HAMCREST_JAR = Path(os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar"))
INSTALL_HINT = "install a JDK 17 and Debian's junit4 (apt-get install -y openjdk-17-jdk-headless junit4)"


def check_toolchain() -> None:
    """Raises RuntimeError naming what is missing."""
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH: {INSTALL_HINT}")
    for jar in (JUNIT_JAR, HAMCREST_JAR):
        if not jar.is_file():
            raise RuntimeError(f"{jar} missing: {INSTALL_HINT}")


def _sources(sub: str) -> list[str]:
    return sorted(str(p) for p in (CORE / "src" / sub / "java").rglob("*.java"))


def compile_core(out: Path) -> tuple[Path, Path]:
    """Compiles main (warnings are errors) and test sources; returns the two class directories."""
    check_toolchain()
    main, test = out / "main", out / "test"
    main.mkdir(parents=True, exist_ok=True)
    test.mkdir(parents=True, exist_ok=True)
    for cmd in (
        ["javac", "--release", "11", "-Xlint:all", "-Werror", "-encoding", "UTF-8", "-d", str(main), *_sources("main")],
        ["javac", "--release", "11", "-encoding", "UTF-8", "-cp", f"{main}:{JUNIT_JAR}", "-d", str(test),
         *_sources("test")],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed:\n{proc.stdout}\n{proc.stderr}")
    return main, test


def classpath(classes: tuple[Path, Path]) -> str:
    return ":".join([str(classes[0]), str(classes[1]), str(JUNIT_JAR), str(HAMCREST_JAR)])


def test_classes() -> list[str]:
    root = CORE / "src" / "test" / "java"
    return sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*Test.java"))


def count_test_methods() -> int:
    """Number of ``@Test`` methods in the JUnit sources (what JUnitCore must report)."""
    root = CORE / "src" / "test" / "java"
    return sum(len(re.findall(r"^\s*@Test\b", p.read_text(encoding="utf-8"), re.M)) for p in root.rglob("*Test.java"))


def run_junit(classes) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["java", "-cp", classpath(classes), "org.junit.runner.JUnitCore", *test_classes()],
        capture_output=True, text=True, timeout=300,
    )


def run_tool(classes, job_path: Path, job: dict) -> None:
    """Writes ``job`` to ``job_path`` and runs the Java CrossLanguageTool on it."""
    job_path.write_text(json.dumps(job), encoding="utf-8")
    proc = subprocess.run(
        ["java", "-cp", classpath(classes), "org.pocketnet.core.CrossLanguageTool", str(job_path)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"CrossLanguageTool failed:\n{proc.stdout}\n{proc.stderr}")
