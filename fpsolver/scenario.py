"""The scenario: the whole model of MODEL §1 plus run settings, as typed data.

One schema (the dataclasses below) drives the TOML files, the ``--set`` overrides, the
Python API and the resolved ``scenario.toml`` written next to every output. Every field
is validated on construction; a bad value raises :class:`ScenarioError` naming the
dotted field path and the fix. Time is in the units of ``tau``; voltages are
dimensionless.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from fpsolver.errors import ScenarioError

logger = logging.getLogger(__name__)

__all__ = [
    "Scenario",
    "load_scenario",
    "scenario_names",
    "apply_overrides",
    "to_toml",
    "PAIRS",
    "POPULATIONS",
]

POPULATIONS = ("e", "i")
PAIRS = ("ee", "ei", "ie", "ii")

DYNAMICS_FAMILIES = ("linear", "double_well", "cubic")
NOISE_FAMILIES = ("diagonal", "multiplicative")
GAIN_FAMILIES = ("linear", "tanh", "tanh_linear")
KERNEL_FAMILIES = ("mean_field", "cosine", "gaussian", "exponential", "matrix")
SPACE_KINDS = ("point", "ring", "torus", "mesh")
POSITION_KINDS = ("grid", "regular", "iid")
STATE_DOMAINS = ("box", "disk")
TIME_SCHEMES = ("bdf2", "cn", "euler")
FRAMES = ("adaptive", "fixed")
MAX_CELLS = 4096  # cells per side of the state box
MAX_HALF_WIDTH_SD = 40   # adaptive frame: the box's half width in standard deviations
MAX_STEPS = 10**10  # time steps of one run; beyond, a typo is likelier than a plan
MAX_RECORDS = 10**7  # recording times (each stores every site)
MAX_SCENARIO_BYTES = 1 << 20  # a scenario file is a few kB; more is not a scenario
MAX_NAME = 200  # characters of ``name``
MAX_TOML_DEPTH = 32  # nesting of tables / arrays in a scenario file
BOUNDS = {"tau": (1e-6, 1e6), "sigma": (0.0, 1e6), "input": (-1e9, 1e9),
          "input_cos": (-1e9, 1e9)}  # |values| beyond are typos (and overflow the C code)


def _doc(text: str, default=dataclasses.MISSING, factory=dataclasses.MISSING):
    """A dataclass field carrying its help text (shown in errors and the README)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _one_of(path: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ScenarioError(path, f"unknown value '{value}'", f"{hint}use one of {list(allowed)}")


def _positive(path: str, value: float, fix: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ScenarioError(path, f"must be a finite number > 0, got {value}", fix)


def _nonnegative(path: str, value: float, fix: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ScenarioError(path, f"must be a finite number >= 0, got {value}", fix)


def _finite(path: str, values: list, fix: str = "give finite numbers") -> None:
    flat = [v for row in values for v in (row if isinstance(row, list) else [row])]
    if not all(math.isfinite(v) for v in flat):
        raise ScenarioError(path, f"must be finite, got {values}", fix)


def _length(path: str, value: list, length: int) -> None:
    if len(value) != length:
        raise ScenarioError(path, f"needs {length} entries, got {len(value)}",
                            f"give a list of {length} numbers")


@dataclass
class Population:
    """One population (``e`` or ``i``) of every local pair."""

    tau: float = _doc("time constant tau_a of the leak F_a = -v_a/tau_a (time units)", 1.0)
    sigma: float = _doc("noise amplitude sigma_a (voltage / sqrt(time))", 1.0)
    input: float = _doc("external input A_a, constant part (voltage / time)", 0.0)
    input_cos: float = _doc("spatial modulation: A_a(x) = input + input_cos * cos(x_1)", 0.0)

    def check(self, path: str) -> None:
        _positive(f"{path}.tau", self.tau, "set a time constant > 0, e.g. 1.0")
        _nonnegative(f"{path}.sigma", self.sigma, "set a noise amplitude >= 0")
        for name in ("input", "input_cos"):
            if not math.isfinite(getattr(self, name)):
                raise ScenarioError(f"{path}.{name}", "must be finite", "give a real number")
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ScenarioError(f"{path}.{name}", f"{value:g} is outside [{low:g}, "
                                    f"{high:g}]", "give a value in that range (rescale "
                                    "time or voltage if you really need more)")


@dataclass
class Populations:
    e: Population = _doc("excitatory population (sign +1)", factory=Population)
    i: Population = _doc("inhibitory population (sign -1)", factory=Population)

    def check(self, path: str) -> None:
        self.e.check(f"{path}.e")
        self.i.check(f"{path}.i")


@dataclass
class Dynamics:
    """Intrinsic dynamics F of a pair (MODEL §1), plus a linear e-i coupling.

    ``linear``:      F_a = -v_a / tau_a + sum_b coupling_ab v_b
    ``double_well``: F_a = [u_a - u_a^3 / width_a^2] / tau_a + sum_b coupling_ab v_b,
                     u_a = v_a - center_a (wells at center_a +- width_a)
    ``cubic``:       F_a = -v_a / tau_a - cubic_a v_a^3 + sum_b coupling_ab v_b
    """

    family: str = _doc(f"one of {list(DYNAMICS_FAMILIES)}", "linear")
    coupling: list[list[float]] = _doc("2x2 matrix L added to F: F_a += sum_b L_ab v_b",
                                       factory=lambda: [[0.0, 0.0], [0.0, 0.0]])
    center: list[float] = _doc("double_well: centre m_a of the two wells",
                               factory=lambda: [0.0, 0.0])
    width: list[float] = _doc("double_well: half distance w_a between the wells",
                              factory=lambda: [1.0, 1.0])
    cubic: list[float] = _doc("cubic: coefficient beta_a >= 0 of -beta_a v_a^3",
                              factory=lambda: [0.0, 0.0])

    def check(self, path: str) -> None:
        _one_of(f"{path}.family", self.family, DYNAMICS_FAMILIES)
        _length(f"{path}.coupling", self.coupling, 2)
        for row in self.coupling:
            _length(f"{path}.coupling", row, 2)
        _finite(f"{path}.coupling", self.coupling)
        for name in ("center", "width", "cubic"):
            _length(f"{path}.{name}", getattr(self, name), 2)
        _finite(f"{path}.center", self.center)
        for a, w in zip(POPULATIONS, self.width):
            _positive(f"{path}.width", w, f"width of population {a} must be > 0")
        for a, b in zip(POPULATIONS, self.cubic):
            _nonnegative(f"{path}.cubic", b, f"cubic coefficient of {a} must be >= 0 (stable)")


@dataclass
class Noise:
    """Noise matrix S (MODEL §1); D = S S^T.

    ``diagonal``:       S = diag(sigma_e, sigma_i)
    ``multiplicative``: S_aa(v) = sigma_a * sqrt(1 + kappa_a v_a^2)
    """

    family: str = _doc(f"one of {list(NOISE_FAMILIES)}", "diagonal")
    kappa: list[float] = _doc("multiplicative: kappa_a >= 0", factory=lambda: [0.0, 0.0])

    def check(self, path: str) -> None:
        _one_of(f"{path}.family", self.family, NOISE_FAMILIES)
        _length(f"{path}.kappa", self.kappa, 2)
        for a, k in zip(POPULATIONS, self.kappa):
            _nonnegative(f"{path}.kappa", k, f"kappa of population {a} must be >= 0")


@dataclass
class Gains:
    """Gains G_ab(z), nondecreasing: C_ab >= 0 and D_ab >= 0.

    ``linear``:      G_ab(z) = C_ab z
    ``tanh``:        G_ab(z) = C_ab tanh(z)
    ``tanh_linear``: G_ab(z) = C_ab tanh(z) + D_ab z, D = ``slope`` (a shape per pair:
                     with one shape for all pairs the balance is linear in the
                     expectations and has at most one root; e.g. a saturating G_ee with
                     linear G_ei, G_ie, G_ii gives an S-shaped branch, two stable states)
    """

    family: str = _doc(f"one of {list(GAIN_FAMILIES)}", "linear")
    ee: float = _doc("C_ee", 0.0)
    ei: float = _doc("C_ei", 1.0)
    ie: float = _doc("C_ie", 1.0)
    ii: float = _doc("C_ii", 1.0)
    slope: list[list[float]] = _doc("tanh_linear: [[D_ee, D_ei], [D_ie, D_ii]], the linear "
                                    "part D_ab z of G_ab (zero for the other families)",
                                    factory=lambda: [[0.0, 0.0], [0.0, 0.0]])

    def check(self, path: str) -> None:
        _one_of(f"{path}.family", self.family, GAIN_FAMILIES)
        for ab in PAIRS:
            _nonnegative(f"{path}.{ab}", getattr(self, ab), "gains must be nondecreasing: C >= 0")
        _length(f"{path}.slope", self.slope, 2)
        for row in self.slope:
            _length(f"{path}.slope", row, 2)
            for d in row:
                _nonnegative(f"{path}.slope", d, "gains must be nondecreasing: D >= 0")
        if self.family != "tanh_linear" and any(d for row in self.slope for d in row):
            raise ScenarioError(f"{path}.slope", f"{self.slope} is only used by the "
                                f"tanh_linear family, not by '{self.family}'",
                                'set gains.family = "tanh_linear" or gains.slope to zeros')


@dataclass
class Kernel:
    """Spatial kernels J_ab(x, x') >= 0 (MODEL §1); the entry for pair ab is a list.

    ``mean_field``:  J_ab = [c]                  -> c (default 1)
    ``cosine``:      J_ab = [c0, c1]             -> c0 + c1 cos(x - x') (warns if c0 < |c1|)
    ``gaussian``:    J_ab = [c]                  -> c exp(-d^2 / (2 width^2)), d periodic
    ``exponential``: J_ab = [c]                  -> c exp(-d / width)
    ``matrix``:      J_ab = [c]                  -> c * M[x, x'], M read from ``file`` (.npy)
    """

    family: str = _doc(f"one of {list(KERNEL_FAMILIES)}", "mean_field")
    ee: list[float] = _doc("parameters of J_ee", factory=lambda: [1.0])
    ei: list[float] = _doc("parameters of J_ei", factory=lambda: [1.0])
    ie: list[float] = _doc("parameters of J_ie", factory=lambda: [1.0])
    ii: list[float] = _doc("parameters of J_ii", factory=lambda: [1.0])
    width: float = _doc("gaussian/exponential: length scale (space units)", 1.0)
    file: str = _doc("matrix: path of a .npy (sites x sites) matrix M >= 0", "")

    def check(self, path: str) -> None:
        _one_of(f"{path}.family", self.family, KERNEL_FAMILIES)
        length = 2 if self.family == "cosine" else 1
        for ab in PAIRS:
            params = getattr(self, ab)
            _length(f"{path}.{ab}", params, length)
            _finite(f"{path}.{ab}", params, "give finite kernel parameters")
            if params[0] < 0:
                raise ScenarioError(f"{path}.{ab}", f"negative kernel weight {params[0]}",
                                    "kernels must be >= 0: use a weight >= 0")
            if self.family == "cosine" and params[0] < abs(params[1]):
                logger.warning("%s.%s: c0 + c1 cos(x - x') takes negative values (c0=%g < "
                               "|c1|=%g); MODEL asks J >= 0, the paper's Fig 5 does not",
                               path, ab, params[0], abs(params[1]))
        _positive(f"{path}.width", self.width, "give a kernel length scale > 0")
        if self.family == "matrix" and not self.file:
            raise ScenarioError(f"{path}.file", "the matrix kernel needs a file",
                                "set kernel.file to a .npy file with a (sites x sites) matrix")


@dataclass
class Space:
    """The space E of positions and its sites (MODEL §1).

    ``point``: one site (mean-field). ``ring``: [0, 2 pi) with ``sites`` equispaced sites.
    ``torus``: [0, 2 pi)^2 with ``sites`` x ``sites`` sites. ``mesh``: nodes of ``mesh``
    with lumped quadrature weights. Positions of the particles: ``grid`` puts n/sites
    pairs at every site (exact network on the site set); ``regular`` spaces the n pairs
    evenly on the ring; ``iid`` draws them uniformly (ring/torus).
    """

    kind: str = _doc(f"one of {list(SPACE_KINDS)}", "point")
    sites: int = _doc("sites of E (per side on the torus); also the recording bins", 1)
    positions: str = _doc(f"particle positions, one of {list(POSITION_KINDS)}", "grid")
    mesh: str = _doc("mesh kind: path of a mesh file (meshio-readable)", "")

    def check(self, path: str) -> None:
        _one_of(f"{path}.kind", self.kind, SPACE_KINDS)
        _one_of(f"{path}.positions", self.positions, POSITION_KINDS)
        if self.sites < 1:
            raise ScenarioError(f"{path}.sites", f"must be >= 1, got {self.sites}",
                                "give the number of sites, e.g. 64")
        if self.kind == "point" and self.sites != 1:
            raise ScenarioError(f"{path}.sites", "a point space has exactly 1 site",
                                "set space.sites = 1 or space.kind = 'ring'")
        if self.kind == "mesh" and not self.mesh:
            raise ScenarioError(f"{path}.mesh", "the mesh space needs a mesh file",
                                "set space.mesh to a .msh/.xdmf/.vtu file")


@dataclass
class Initial:
    """Initial data (MODEL §2d): fluctuations ~ N(0, cov); vbar(0) solves the constraint.

    The constraint can have several roots (e.g. ``bistable-balance``): Newton then finds
    the one nearest its start, ``vbar`` when given (the same at every site), else 0.
    """

    cov: list[list[float]] = _doc("initial covariance K0 of (y_e, y_i), 2x2 s.p.d.",
                                  factory=lambda: [[1.0, 0.0], [0.0, 1.0]])
    vbar: list[float] = _doc("[v_e, v_i]: the start of Newton's method for vbar(0), which "
                             "picks the balanced root when there are several ([]: 0)",
                             factory=list)

    def check(self, path: str) -> None:
        _length(f"{path}.cov", self.cov, 2)
        for row in self.cov:
            _length(f"{path}.cov", row, 2)
        _finite(f"{path}.cov", self.cov, "give a finite covariance matrix")
        (a, b), (c, d) = self.cov
        if b != c or a <= 0 or a * d - b * c <= 0:
            raise ScenarioError(f"{path}.cov", f"not symmetric positive definite: {self.cov}",
                                "give [[K_ee, K_ei], [K_ei, K_ii]] with K_ee > 0, det > 0")
        if self.vbar:
            if len(self.vbar) != 2:
                raise ScenarioError(f"{path}.vbar", f"needs 2 entries or none, got "
                                    f"{len(self.vbar)}", "give [v_e, v_i], or [] for 0")
            _finite(f"{path}.vbar", self.vbar, "give a finite guess [v_e, v_i]")
            for v in self.vbar:
                if abs(v) > BOUNDS["input"][1]:
                    raise ScenarioError(f"{path}.vbar", f"{v} is out of range",
                                        "give a guess of the balanced means, |v| <= 1e9")


@dataclass
class Record:
    every: float = _doc("recording interval of the observables (time units)", 0.05)
    snapshots: list[float] = _doc("times at which full states / densities are saved",
                                  factory=list)

    def check(self, path: str) -> None:
        _positive(f"{path}.every", self.every, "give a recording interval > 0")
        for t in self.snapshots:
            _nonnegative(f"{path}.snapshots", t, "give snapshot times >= 0")


@dataclass
class Kinetic:
    """Finite-element discretisation of the fluctuation Fokker-Planck equation (§2b).

    By default every setting is chosen from the scenario (0 means automatic): each site's
    density is solved in its own moving frame y = ell(t) z, ell^2 tracking the variance,
    on a box of ``half_width`` standard deviations; the time step comes from the fastest
    relaxation rate and ``tol``. Each run estimates its own error and warns above ``tol``.
    """

    degree: int = _doc("Lagrange degree, 1 to 4 (0: automatic, 3)", 0)
    cells: int = _doc("cells per side of the generated box mesh (0: automatic)", 0)
    domain: str = _doc("state domain: 'box', 'disk', or a mesh file in meshes/", "box")
    frame: str = _doc(
        f"one of {list(FRAMES)}: 'adaptive' solves each site's density in its own frame "
        "y = ell(t) z (ell^2 follows the variance; half_width in standard deviations); "
        "'fixed' solves in y itself (half_width in voltage)", "adaptive")
    half_width: float = _doc(
        "half width of the box / radius of the disk: standard deviations with the "
        "adaptive frame, voltage with the fixed one (0: automatic)", 0.0)
    grading: float = _doc(
        "sinh grading a of the box: a uniform grid s in [-1, 1] per axis is mapped to "
        "half_width sinh(a s) / sinh(a), cells a / sinh(a) times the uniform size at the "
        "origin and a / tanh(a) times at the edge; 0: uniform", 0.0)
    dt: float = _doc("time step of the kinetic solver (time units; 0: automatic)", 0.0)
    scheme: str = _doc(f"time scheme, one of {list(TIME_SCHEMES)}", "bdf2")
    tol: float = _doc("target relative error in K and vbar: the run estimates its own error "
                      "and warns above it; also sets the automatic time step", 1e-4)
    petsc_options: dict = _doc("PETSc options merged over the LU/MUMPS defaults", factory=dict)

    def check(self, path: str) -> None:
        if self.degree not in (0, 1, 2, 3, 4):
            raise ScenarioError(f"{path}.degree", f"must be 0 (automatic) or 1 to 4, got "
                                f"{self.degree}", "use 0, or P1 to P4 (3 is the default)")
        if self.cells != 0 and not 2 <= self.cells <= MAX_CELLS:
            raise ScenarioError(f"{path}.cells", f"must be 0 (automatic) or in [2, "
                                f"{MAX_CELLS}], got {self.cells}",
                                "use 0, or e.g. 24 to 128 cells per side")
        _one_of(f"{path}.frame", self.frame, FRAMES)
        _nonnegative(f"{path}.half_width", self.half_width,
                     "give 0 (automatic) or the truncation size > 0")
        if 0 < self.half_width < 1e-6:
            raise ScenarioError(f"{path}.half_width", f"{self.half_width} is too small to "
                                "hold a density", "give 0 (automatic) or a size >= 1e-6")
        if self.frame == "adaptive" and self.half_width > MAX_HALF_WIDTH_SD:
            raise ScenarioError(
                f"{path}.half_width", f"{self.half_width} standard deviations: the moving "
                "frame's box would be mostly empty and refined without bound (a Gaussian "
                f"holds all but exp(-{MAX_HALF_WIDTH_SD ** 2 // 2:.0f}) of its mass within "
                f"{MAX_HALF_WIDTH_SD})", f"give 0 (automatic) or at most {MAX_HALF_WIDTH_SD}, "
                "or kinetic.frame = 'fixed' for a box in voltage units")
        if not (0 <= self.grading <= 8 and math.isfinite(self.grading)):
            raise ScenarioError(f"{path}.grading", f"must be in [0, 8], got {self.grading}",
                                "use 0 (uniform) or a mild grading such as 1.5")
        _nonnegative(f"{path}.dt", self.dt, "give 0 (automatic) or a time step > 0")
        _one_of(f"{path}.scheme", self.scheme, TIME_SCHEMES)
        if not (1e-12 <= self.tol <= 0.5):
            raise ScenarioError(f"{path}.tol", f"must be in [1e-12, 0.5], got {self.tol}",
                                "give a relative tolerance such as 1e-4")
        from fpsolver.safe_options import check_petsc_options

        check_petsc_options(self.petsc_options)  # an allow-list: no viewers, files, code


@dataclass
class Scenario:
    """A complete scenario: model (MODEL §1), initial data, time grid and numerics."""

    name: str = _doc("scenario name", "custom")
    description: str = _doc("one line describing the scenario", "")
    n: int = _doc("number of local E-I pairs of the finite network", 10000)
    seed: int = _doc("random seed (same seed -> identical output)", 0)
    t_end: float = _doc("final time (time units)", 5.0)
    dt: float = _doc("time step of the particle simulator (time units)", 1e-3)
    populations: Populations = _doc("the e and i populations", factory=Populations)
    dynamics: Dynamics = _doc("intrinsic dynamics F", factory=Dynamics)
    noise: Noise = _doc("noise matrix S", factory=Noise)
    gains: Gains = _doc("gains G_ab", factory=Gains)
    kernel: Kernel = _doc("spatial kernels J_ab", factory=Kernel)
    space: Space = _doc("space E and its sites", factory=Space)
    initial: Initial = _doc("initial data", factory=Initial)
    record: Record = _doc("what is recorded and when", factory=Record)
    kinetic: Kinetic = _doc("finite-element solver settings", factory=Kinetic)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Validate every field; raise :class:`ScenarioError` on the first bad one."""
        if "\n" in self.name or "\r" in self.name or not self.name.isprintable() or \
                len(self.name) > MAX_NAME:
            raise ScenarioError("name", f"must be one printable line of at most {MAX_NAME} "
                                f"characters, got {self.name[:60]!r}", "give a short label")
        if self.n < 1:
            raise ScenarioError("n", f"must be >= 1, got {self.n}", "give the number of pairs")
        _positive("dt", self.dt, "give a time step > 0, e.g. 1e-3")
        _positive("t_end", self.t_end, "give a final time > 0")
        if not 0 <= self.seed < 2**63:
            raise ScenarioError("seed", f"must be in [0, 2**63), got {self.seed}",
                                "give a seed >= 0 below 9223372036854775808")
        if self.t_end < self.dt:
            raise ScenarioError("t_end", f"t_end={self.t_end} is shorter than dt={self.dt}",
                                "make t_end >= dt")
        if self.kinetic.dt and self.t_end < self.kinetic.dt:
            raise ScenarioError("kinetic.dt", f"kinetic.dt={self.kinetic.dt} is longer than "
                                f"t_end={self.t_end}", "make kinetic.dt <= t_end")
        for name in ("populations", "dynamics", "noise", "gains", "kernel", "space",
                     "initial", "record", "kinetic"):
            getattr(self, name).check(name)
        for field_, step, limit in (("dt", self.dt, MAX_STEPS),
                                    ("record.every", self.record.every, MAX_RECORDS),
                                    ("kinetic.dt", self.kinetic.dt, MAX_STEPS)):
            if step and self.t_end / step > limit:
                raise ScenarioError(field_, f"t_end / {field_} = {self.t_end / step:.3g} "
                                    f"(more than {limit:.0e})",
                                    f"make {field_} larger or t_end smaller")
        if self.kernel.family == "cosine" and self.space.kind != "ring":
            raise ScenarioError("kernel.family", "the cosine kernel needs a ring",
                                "set space.kind = 'ring' or use a distance kernel")
        if self.kernel.family != "mean_field" and self.space.kind == "point":
            raise ScenarioError("space.kind", f"kernel '{self.kernel.family}' needs a space",
                                "set space.kind to 'ring', 'torus' or 'mesh'")
        if self.space.positions == "grid" and self.n % self.space.sites:
            raise ScenarioError("n", f"n={self.n} is not a multiple of space.sites="
                                f"{self.space.sites} (grid positions)",
                                "choose n divisible by sites, or space.positions = 'regular'")

    def replace(self, **changes) -> Scenario:
        """A validated copy with top-level fields replaced (like dataclasses.replace)."""
        return dataclasses.replace(copy.deepcopy(self), **changes)

    def to_dict(self) -> dict:
        """The scenario as nested dicts and lists (the TOML tables)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- loading and overrides


def _convert(tp, value, path: str):
    """Convert a TOML value to the annotated type, or raise ScenarioError."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ScenarioError(path, f"expected a table, got {value!r}",
                                f"write it as [{path}] with keys")
        return _from_dict(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(path, f"expected a number, got {value!r}", "give a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or
                                           (isinstance(value, float) and value.is_integer())):
            raise ScenarioError(path, f"expected an integer, got {value!r}",
                                "give a whole number")
        return int(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(path, f"expected a string, got {value!r}", "quote the value")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ScenarioError(path, f"expected a table, got {value!r}", "give a TOML table")
        return dict(value)
    if origin is list:
        if not isinstance(value, list):
            raise ScenarioError(path, f"expected a list, got {value!r}", "give a [..] list")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, path) for v in value]
    raise TypeError(f"unsupported schema type {tp} at {path}")  # a bug in the schema


def _from_dict(cls, data: dict, path: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else key
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ScenarioError(where, "unknown key", f"{hint}known keys here: {names}")
    return cls(**{k: _convert(hints[k], v, f"{path}.{k}" if path else k) for k, v in data.items()})


def scenario_names() -> list[str]:
    """Names of the scenarios shipped with the package."""
    files = resources.files("fpsolver.scenarios").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".toml"))


def _looks_like_path(arg: str) -> bool:
    return "/" in arg or "\\" in arg or arg.endswith(".toml") or arg.startswith(".")


def _read_text(path: Path, label: str) -> str:
    """The text of a scenario file: a regular UTF-8 file of at most MAX_SCENARIO_BYTES."""
    import stat

    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ScenarioError("scenario", f"{label} is a directory",
                                f"give a TOML file or one of {scenario_names()}")
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError("scenario", f"{label} is not a regular file (a device or "
                                "pipe)", "give a TOML file")
        if info.st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError("scenario", f"{label} has {info.st_size} bytes (limit "
                                f"{MAX_SCENARIO_BYTES})", "a scenario is a small TOML file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError("scenario", f"cannot read {label}: {exc.strerror or exc}",
                            "give a readable TOML file") from exc
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError("scenario", f"{label} is larger than {MAX_SCENARIO_BYTES} bytes",
                            "a scenario is a small TOML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError("scenario", f"{label} is not UTF-8 text (byte {exc.start}: "
                            f"{raw[exc.start:exc.start + 1]!r})",
                            "save the file as UTF-8 (TOML files are UTF-8)") from exc


def _depth(text: str) -> int:
    """An upper bound of the nesting depth of brackets and braces.

    Brackets inside strings count too: a bound is all that is needed.
    """
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def _read_toml(name_or_path: str | Path) -> tuple[dict, Path | None]:
    """The TOML dict of a scenario and the folder its relative paths start from.

    A shipped name wins over a same-named file in the current directory unless the
    argument looks like a path (contains '/', starts with '.', or ends in .toml).
    """
    arg = str(name_or_path)
    shipped = resources.files("fpsolver.scenarios") / f"{arg}.toml"
    is_shipped = (not isinstance(name_or_path, Path) and not _looks_like_path(arg)
                  and arg in scenario_names())
    if is_shipped:
        text, base = shipped.read_text(encoding="utf-8"), None
    else:
        path = Path(name_or_path)
        if not path.exists():
            if not _looks_like_path(arg) and not path.is_symlink():
                raise ScenarioError("scenario", f"no scenario named '{arg}'",
                                    f"use one of {scenario_names()} or a path to a .toml file")
            raise ScenarioError("scenario", f"file {path} not found",
                                f"give an existing file or one of {scenario_names()}")
        text, base = _read_text(path, str(path)), path.resolve().parent
    if _depth(text) > MAX_TOML_DEPTH:
        raise ScenarioError("scenario", f"{arg} nests tables or arrays more than "
                            f"{MAX_TOML_DEPTH} deep", "a scenario has at most a few levels")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("scenario", f"{arg} is not valid TOML: {exc}",
                            "fix the TOML syntax") from exc
    except RecursionError as exc:
        raise ScenarioError("scenario", f"{arg} nests too deep to read",
                            "a scenario has at most a few levels") from exc
    return data, base


def _parse_value(text: str):
    if _depth(text) > MAX_TOML_DEPTH:
        raise ScenarioError("--set", f"the value nests more than {MAX_TOML_DEPTH} deep",
                            "give a plain value")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string, e.g. --set gains.family=tanh


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (values in TOML syntax) to a scenario dict."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(item, "an override must look like key.path=value",
                                "e.g. --set populations.e.tau=0.5")
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ScenarioError(".".join(parents[: i + 1]), "is a value, not a table",
                                    f"override it directly, not '{key}'")
            node = child
        node[leaf] = _parse_value(text.strip())
    return data


def scenario_from_dict(data: dict) -> Scenario:
    """Build and validate a :class:`Scenario` from a (TOML) dict."""
    return _from_dict(Scenario, data)


def load_scenario(name_or_path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load a shipped scenario by name, or a TOML file by path, then apply overrides.

    Relative ``kernel.file``, ``space.mesh`` and ``kinetic.domain`` paths in a file are
    taken relative to it; those of a shipped scenario or a ``--set`` override relative to
    the current directory (:mod:`fpsolver.paths`).
    """
    from fpsolver.paths import resolve_scenario_paths

    data, base = _read_toml(name_or_path)
    resolve_scenario_paths(data, base or Path.cwd())
    data = apply_overrides(data, overrides or [])
    resolve_scenario_paths(data, Path.cwd())
    return scenario_from_dict(data)


def to_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML text (round-trips through :func:`load_scenario`).

    ``tomli_w`` quotes and escapes every string and key (newlines, quotes, dotted PETSc
    keys such as ``"pc.x"``).
    """
    return tomli_w.dumps(scenario.to_dict())
