"""The Docker image's install steps and the libraries gmsh needs, without a Docker engine.

The install steps run through docker/check-install.sh; a static check finds every library
gmsh needs in the image.

No Docker engine runs here, so the image's packages are checked against this machine,
which runs the image's Debian release (bookworm): ``ldd`` lists every library that
libgmsh.so of the venv loads, ``dpkg -S`` names the package of each, and each must be
installed by the Dockerfile's ``apt-get install`` line (or come with the base image),
directly or as a Debian dependency of one (``dpkg-query`` Depends, followed recursively).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
# in python:3.12-slim-bookworm: the C library, and apt's own libraries (apt needs them)
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def test_dockerfile_installs_with_the_readme_command():
    text = DOCKERFILE.read_text()
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith("FROM")] == ["FROM python:3.12-slim-bookworm"]
    assert {"gcc", "make"} <= apt_packages(text)
    assert 'RUN docker/install.sh && docker/smoke.sh "$VENV"' in lines
    assert 'ENTRYPOINT ["fpsolver"]' in text
    assert "make install" in (ROOT / "docker" / "install.sh").read_text()
    smoke = (ROOT / "docker" / "smoke.sh").read_text()
    assert "kinetic.domain=disk" in smoke and "smoke.sh" in (
        ROOT / "docker" / "check-install.sh").read_text()


def apt_packages(dockerfile_text: str) -> set[str]:
    """The packages of every ``apt-get install`` in the Dockerfile."""
    joined = dockerfile_text.replace("\\\n", " ")
    out = set()
    for match in re.finditer(r"apt-get install ([^&\n]*)", joined):
        out |= {w for w in match.group(1).split() if not w.startswith("-")}
    return out


def _libgmsh() -> Path:
    found = sorted(Path(sys.prefix).glob("lib*/libgmsh.so*"))
    if not found:
        pytest.fail("libgmsh.so not found in the venv: is the `mesh` extra (gmsh) installed?")
    return found[0]


def _ldd(lib: Path) -> dict[str, str]:
    """Map soname -> resolved path of every library ``lib`` loads (ldd, recursive)."""
    out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            name, target = parts[0], parts[parts.index("=>") + 1]
            assert target != "not", f"{lib.name} needs {name}, not found on this machine"
            libs[name] = target
        elif parts and parts[0].startswith("/"):
            libs[Path(parts[0]).name] = parts[0]  # the dynamic loader
    return libs


def _owners(paths) -> dict[str, str]:
    """Map path -> the Debian package owning it, from one ``dpkg -S`` call.

    As linked or resolved, /usr toggled (usrmerge).
    """
    candidates = {}
    for path in paths:
        real = str(Path(path).resolve())
        for p in (path, real):
            for c in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
                candidates.setdefault(c, path)
    proc = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True)
    owners = {}
    for line in proc.stdout.splitlines():
        package, _, found = line.partition(": ")
        if found in candidates and "diversion" not in package:
            owners.setdefault(candidates[found], package.split(",")[0].split(":")[0].strip())
    return owners


def _closure(packages: set[str]) -> set[str]:
    """``packages`` and, recursively, the installed packages they depend on."""
    seen, todo = set(), set(packages)
    while todo:
        seen |= todo
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}\n",
                               *sorted(todo)], capture_output=True, text=True)
        deps = {dep.strip().split(" ")[0].split(":")[0]
                for alternatives in proc.stdout.replace("\n", ",").split(",")
                for dep in alternatives.split("|")}
        todo = deps - seen - {""}
    return seen


def uncovered(packages: set[str]) -> dict[str, str]:
    """Libraries libgmsh loads whose package ``packages`` (+ base image) do not install."""
    have = _closure(packages | BASE_PACKAGES)
    libs = _ldd(_libgmsh())
    owners = _owners(libs.values())
    return {name: owners.get(path, f"{path} (no package)") for name, path in libs.items()
            if owners.get(path) not in have}


def _need_debian_bookworm():
    if not (shutil.which("dpkg") and shutil.which("ldd")):
        pytest.skip("needs dpkg and ldd (a Debian machine like the image)")
    release = Path("/etc/os-release").read_text()
    if "VERSION_CODENAME=bookworm" not in release:
        pytest.skip("package names are checked on the image's Debian release, bookworm")


def test_image_installs_every_library_libgmsh_links():
    _need_debian_bookworm()
    libs = _ldd(_libgmsh())
    assert {"libGLU.so.1", "libGL.so.1", "libXft.so.2", "libXinerama.so.1"} <= set(libs)
    assert uncovered(apt_packages(DOCKERFILE.read_text())) == {}


def test_the_library_check_sees_a_missing_package():
    _need_debian_bookworm()
    packages = apt_packages(DOCKERFILE.read_text()) - {"libglu1-mesa", "libxinerama1"}
    missing = uncovered(packages)
    assert {"libGLU.so.1", "libXinerama.so.1"} <= set(missing)
    assert missing["libGLU.so.1"] == "libglu1-mesa"


@pytest.mark.slow
def test_install_steps_work_in_a_fresh_venv():
    proc = subprocess.run(["sh", str(ROOT / "docker" / "check-install.sh")],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "smoke: disk domain (gmsh) ok" in proc.stdout
    assert "check-install: ok" in proc.stdout
