"""CFDBench's four flows as problems for the one solver: physical parameters -> non-dimensional set-up.

A :class:`Flow` turns one case's SI parameters (CFDBench's ``case.json`` keys, plus obstacle
geometry where CFDBench dropped it) into a :class:`FlowSetup` in units of the flow's scale
length L and velocity U, and says how to convert back (velocity x U, pressure x rho U^2,
time x L / U, lengths x L). Checks reject ill-posed cases before any work, naming the
parameter and the limit. :mod:`cfdbench.solvers.simulate` runs the set-ups in batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.solvers.geometry import fluid_fraction


@dataclass(frozen=True)
class FlowSetup:
    """One case in scale units: window, boundaries, viscosity, driving and bodies."""

    length_x: float
    length_y: float
    nu: float  # 1 / Re on the scale length and velocity
    bc_x: str  # "wall" (closed box) or "channel" (inlet at x = 0, outlet at x = length_x)
    window_si: tuple[float, float, float, float]  # (x0, y0, width, height) of the window in metres
    lid_speed: float = 0.0  # tangential velocity of the top wall
    inlet_top: float | None = None  # inflow u = 1 for y below this height (None: whole inlet)
    block: tuple[float, float, float, float] | None = None  # grid-aligned solid (x0, x1, y0, y1)
    disc: tuple[float, float, float] | None = None  # immersed cylinder (cx, cy, radius)

    def solid_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where (x, y) (scale units, window coordinates) is inside a body."""
        inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
        if self.block is not None:
            x0, x1, y0, y1 = self.block
            inside |= (x > x0) & (x < x1) & (y > y0) & (y < y1)
        if self.disc is not None:
            cx, cy, r = self.disc
            inside |= (x - cx) ** 2 + (y - cy) ** 2 <= r**2
        return inside

    def fluid_fraction(self, shape: tuple[int, int]) -> np.ndarray:
        """(ny, nx) share of each cell of the window cut into ``shape`` = (ny, nx) equal cells outside
        every body, exact (:func:`cfdbench.solvers.geometry.fluid_fraction`), float32 as stored."""
        ny, nx = shape
        edges_x, edges_y = np.linspace(0.0, self.length_x, nx + 1), np.linspace(0.0, self.length_y, ny + 1)
        return fluid_fraction(edges_x, edges_y, block=self.block, disc=self.disc).astype(np.float32)


def _nu(p: dict[str, float], velocity_key: str, length: float) -> float:
    """Non-dimensional viscosity 1 / Re with Re = rho U L / mu (dynamic viscosity, as in CFDBench)."""
    return 1.0 / (p["density"] * p[velocity_key] * length / p["viscosity"])


class Flow:
    """A problem family. Subclasses define the parameters, scales, checks and set-up."""

    name: str
    parameters: tuple[str, ...]
    units: dict[str, str]
    boundary_conditions = {"x": "open", "y": "wall"}

    def scales(self, p: dict[str, float]) -> tuple[float, float]:
        """(scale length L in m, scale velocity U in m/s) of a case."""
        raise NotImplementedError

    def setup(self, p: dict[str, float]) -> FlowSetup:
        raise NotImplementedError

    def check(self, p: dict[str, float], label: str) -> None:
        """Reject missing, non-positive or ill-posed parameters with the name and the limit."""
        missing = [k for k in self.parameters if k not in p]
        if missing:
            raise CfdbenchError(f"{self.name} case '{label}': missing parameters {missing}")
        for key in self.parameters:
            value = p[key]
            if not np.isfinite(value) or value <= 0:
                raise CfdbenchError(f"{self.name} case '{label}': {key} must be positive, got {value}")
        self._check_geometry(p, label)

    def _check_geometry(self, p: dict[str, float], label: str) -> None:
        pass

    def setup_checked(self, p: dict[str, float], label: str) -> FlowSetup:
        self.check(p, label)
        return self.setup(p)


class Cavity(Flow):
    """Lid-driven cavity [0, width] x [0, height], lid at vel_top; L = width, U = vel_top."""

    name = "cavity"
    parameters = ("vel_top", "density", "viscosity", "height", "width")
    units = {"vel_top": "m/s", "density": "kg/m^3", "viscosity": "Pa s", "height": "m", "width": "m"}
    boundary_conditions = {"x": "wall", "y": "wall"}

    def scales(self, p):
        return p["width"], p["vel_top"]

    def setup(self, p):
        window = (0.0, 0.0, p["width"], p["height"])
        return FlowSetup(1.0, p["height"] / p["width"], _nu(p, "vel_top", p["width"]), "wall", window, lid_speed=1.0)


class Tube(Flow):
    """Developing channel flow [0, width] x [0, height] (CFDBench: length l = width, diameter d =
    height), uniform inlet vel_in, started from rest; L = height, U = vel_in."""

    name = "tube"
    parameters = ("vel_in", "density", "viscosity", "height", "width")
    units = {"vel_in": "m/s", "density": "kg/m^3", "viscosity": "Pa s", "height": "m", "width": "m"}

    def scales(self, p):
        return p["height"], p["vel_in"]

    def setup(self, p):
        window = (0.0, 0.0, p["width"], p["height"])
        return FlowSetup(p["width"] / p["height"], 1.0, _nu(p, "vel_in", p["height"]), "channel", window)


class Dam(Flow):
    """CFDBench's dam window [0, width] x [0, height] (1.5 m x 0.4 m): inlet velocity on the lowest
    inlet_height of the left side, wall above; a barrier [barrier_x, barrier_x + barrier_width] x
    [0, barrier_height] on the floor; outlet on the right. L = height (window), U = velocity."""

    name = "dam"
    parameters = ("velocity", "density", "viscosity", "height", "width", "barrier_height", "barrier_width")
    units = {
        "velocity": "m/s",
        "density": "kg/m^3",
        "viscosity": "Pa s",
        "height": "m",
        "width": "m",
        "barrier_height": "m",
        "barrier_width": "m",
    }
    barrier_x = 0.5
    inlet_height = 0.1

    def scales(self, p):
        return p["height"], p["velocity"]

    def _check_geometry(self, p, label):
        if self.barrier_x + p["barrier_width"] >= p["width"]:
            raise CfdbenchError(
                f"dam case '{label}': barrier_width {p['barrier_width']:g} puts the barrier beyond the outlet "
                f"(limit: barrier_width < width - {self.barrier_x} = {p['width'] - self.barrier_x:g} m)"
            )
        if p["barrier_height"] >= p["height"]:
            raise CfdbenchError(
                f"dam case '{label}': barrier_height {p['barrier_height']:g} blocks the channel "
                f"(limit: < height {p['height']:g} m)"
            )
        if self.inlet_height >= p["height"]:
            raise CfdbenchError(f"dam case '{label}': height {p['height']:g} must exceed the inlet height {self.inlet_height} m")

    def setup(self, p):
        L = p["height"]
        block = (self.barrier_x / L, (self.barrier_x + p["barrier_width"]) / L, 0.0, p["barrier_height"] / L)
        window = (0.0, 0.0, p["width"], p["height"])
        nu = _nu(p, "velocity", L)
        return FlowSetup(p["width"] / L, 1.0, nu, "channel", window, inlet_top=self.inlet_height / L, block=block)


class Cylinder(Flow):
    """CFDBench's box [-x_min, x_max] x [-y_min, y_max] around a cylinder of radius ``radius`` at the
    origin, uniform inlet vel_in, no-slip walls, outlet; L = diameter, U = vel_in.

    The box sides are given as positive distances from the centre (CFDBench's x1, x2, y1, y2)."""

    name = "cylinder"
    parameters = ("vel_in", "density", "viscosity", "radius", "x_min", "x_max", "y_min", "y_max")
    units = {
        "vel_in": "m/s",
        "density": "kg/m^3",
        "viscosity": "Pa s",
        "radius": "m",
        "x_min": "m",
        "x_max": "m",
        "y_min": "m",
        "y_max": "m",
    }

    def scales(self, p):
        return 2 * p["radius"], p["vel_in"]

    def _check_geometry(self, p, label):
        r = p["radius"]
        for key in ("x_min", "x_max", "y_min", "y_max"):
            if p[key] <= 1.5 * r:
                raise CfdbenchError(
                    f"cylinder case '{label}': {key} {p[key]:g} leaves no room around the cylinder "
                    f"(limit: > 1.5 x radius = {1.5 * r:g} m)"
                )

    def setup(self, p):
        d = 2 * p["radius"]
        width, height = p["x_min"] + p["x_max"], p["y_min"] + p["y_max"]
        window = (-p["x_min"], -p["y_min"], width, height)
        disc = (p["x_min"] / d, p["y_min"] / d, 0.5)
        return FlowSetup(width / d, height / d, _nu(p, "vel_in", d), "channel", window, disc=disc)


FLOWS: dict[str, Flow] = {flow.name: flow for flow in (Cavity(), Tube(), Dam(), Cylinder())}


def get_flow(name: str) -> Flow:
    if name not in FLOWS:
        raise UnknownNameError("problem", name, list(FLOWS))
    return FLOWS[name]
