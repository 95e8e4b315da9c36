"""Running the package's commands as a user does (``python -m ...`` in a subprocess) in tests."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def run_module(module: str, args, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    """``python -m module *args`` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def start_module(module: str, args) -> subprocess.Popen:
    """The same, started in the background (stdout dropped, stderr piped) for kill/resume tests."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for_state(proc: subprocess.Popen, state_path: Path, ready, deadline: float):
    """Polls a run's checkpoint ``state.json`` until ``ready(state)``; None if the process ends or
    the deadline passes first."""
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            state = None
        if state and ready(state):
            return state
        time.sleep(0.05)
    return None


def kill_at_checkpoint(module: str, args, state_path: Path, ready, timeout: float):
    """Starts ``python -m module *args``, SIGKILLs it as soon as its checkpoint ``state.json``
    satisfies ``ready``, and returns ``(state seen, exit code)``; the state is None (and the
    process killed anyway) if it ended or ``timeout`` passed first."""
    proc = start_module(module, args)
    try:
        state = wait_for_state(proc, state_path, ready, time.time() + timeout)
        if state is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    return state, proc.returncode


def parsed_flags(define_flags, *args, command: str = "command"):
    """A fresh ``FlagValues`` with a stage's flags (``define_flags(flag_values)``) parsed from ``args``
    as its command line would be, dashes allowed (:func:`pocketnet_tf.cli.parse_flags`)."""
    from absl import flags

    from pocketnet_tf import cli

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    cli.parse_flags([command, *args], flag_values)
    return flag_values
