"""The Docker image's install steps, run without a Docker engine (docker/check-install.sh)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_installs_with_the_readme_command():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert text.splitlines()[[ln.startswith("FROM") for ln in text.splitlines()].index(True)] \
        == "FROM python:3.12-slim"
    assert "gcc" in text and "make" in text
    assert "RUN docker/install.sh" in text and 'ENTRYPOINT ["fpsolver"]' in text
    assert "make install" in (ROOT / "docker" / "install.sh").read_text()


@pytest.mark.slow
def test_install_steps_work_in_a_fresh_venv():
    proc = subprocess.run(["sh", str(ROOT / "docker" / "check-install.sh")],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "check-install: ok" in proc.stdout
