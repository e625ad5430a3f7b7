"""Subprocess helpers shared by the tests that launch fpsolver (signals, MPI)."""

import subprocess

import pytest


def communicate_or_fail(proc: subprocess.Popen, timeout: float, what: str):
    """(returncode, stdout, stderr) of ``proc``, or kill it and fail the test.

    Fails if it is still running after ``timeout`` seconds (``what`` names it in the
    failure).
    """
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{what}: still running after {timeout} s")
    return proc.returncode, out, err
