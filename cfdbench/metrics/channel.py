"""Turbulent channel statistics: the numbers a channel flow is judged by, DNS or surrogate.

Used by the channel generator's checks (spin-up against Moser, Kim & Mansour 1999) and by the
evaluator (a surrogate's long rollout against the DNS truth). Inputs are velocity trajectories
``(T, 3, nz, ny, nx)`` = (u, v, w) in the stored frame layout, with the wall-normal coordinate
``y`` in [-1, 1] (half-height δ = 1) and the kinematic viscosity ``nu`` in the same units.
Averages run over time and the two homogeneous directions x and z.
"""

from __future__ import annotations

import numpy as np
import torch

TINY = 1e-12
# Moser, Kim & Mansour (1999) at Re_τ = 178.12 (validation.md §5).
MKM_RE_TAU_180 = {"re_tau": 178.12, "centreline_u_plus": 18.301, "bulk_u_plus": 15.68, "bulk_reynolds": 5586.0}
# Gates after spin-up (validation.md §5): centreline U+ within 2 %; total shear stress linear within 3 %.
CENTRELINE_TOLERANCE = 0.02
SHEAR_STRESS_TOLERANCE = 0.03
SHEAR_STRESS_RANGE = (0.2, 0.8)  # y/δ from the wall


def _as_components(velocity: np.ndarray, wall_axis: int) -> np.ndarray:
    """(3, samples, ny): the components with every homogeneous and time sample on one axis."""
    velocity = np.moveaxis(np.asarray(velocity, dtype=np.float64), wall_axis, -1)
    return np.moveaxis(velocity, 1, 0).reshape(3, -1, velocity.shape[-1])


def channel_statistics(velocity: np.ndarray, wall_axis: int = -2) -> dict[str, np.ndarray]:
    """Profiles over the wall-normal axis of a trajectory ``velocity`` (T, 3, ...) = (u, v, w), u
    streamwise and v wall-normal: mean u, rms of u', v', w' and the Reynolds shear stress -<u'v'>."""
    components = _as_components(velocity, wall_axis)
    fluctuation = components - components.mean(axis=1, keepdims=True)
    rms = np.sqrt((fluctuation**2).mean(axis=1))
    return {
        "mean_u": components[0].mean(axis=0),
        "rms_u": rms[0],
        "rms_v": rms[1],
        "rms_w": rms[2],
        "reynolds_stress": -(fluctuation[0] * fluctuation[1]).mean(axis=0),
    }


class RunningProfiles:
    """The profiles of :func:`channel_statistics` accumulated one sample at a time (sums over samples,
    x, z and the batch, per wall-normal cell), so that a DNS can gather them while it runs and
    resume them from a restart file."""

    NAMES = ("u", "v", "w", "uu", "vv", "ww", "uv")

    def __init__(self, ny: int, sums: dict[str, list[float]] | None = None, count: int = 0):
        self.sums = {name: np.asarray(sums[name]) if sums else np.zeros(ny) for name in self.NAMES}
        self.count = count

    def add(self, u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> None:
        """One sample of cell-centred velocities, each (B, nz, ny, nx)."""
        products = {"u": u, "v": v, "w": w, "uu": u * u, "vv": v * v, "ww": w * w, "uv": u * v}
        for name, values in products.items():
            self.sums[name] += values.double().sum(dim=(0, 1, 3)).cpu().numpy()
        self.count += u.shape[0] * u.shape[1] * u.shape[3]

    def profiles(self) -> dict[str, np.ndarray]:
        """The profiles of :func:`channel_statistics`."""
        mean = {name: self.sums[name] / max(self.count, 1) for name in self.NAMES}
        return {
            "mean_u": mean["u"],
            "rms_u": np.sqrt(np.maximum(mean["uu"] - mean["u"] ** 2, 0)),
            "rms_v": np.sqrt(np.maximum(mean["vv"] - mean["v"] ** 2, 0)),
            "rms_w": np.sqrt(np.maximum(mean["ww"] - mean["w"] ** 2, 0)),
            "reynolds_stress": -(mean["uv"] - mean["u"] * mean["v"]),
        }

    def to_dict(self) -> dict:
        return {"sums": {k: v.tolist() for k, v in self.sums.items()}, "count": self.count}


def channel_statistics_errors(pred: np.ndarray, truth: np.ndarray, wall_axis: int = -2) -> dict[str, float]:
    """Relative L2 error of each profile of :func:`channel_statistics`, prediction against truth."""
    predicted, true = channel_statistics(pred, wall_axis), channel_statistics(truth, wall_axis)
    return {name: _relative_l2(predicted[name], true[name]) for name in true}


def _relative_l2(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(predicted - true) / max(np.linalg.norm(true), TINY))


def wall_shear_rate(mean_u: np.ndarray, y: np.ndarray) -> float:
    """dU/dy at the walls (both averaged) from the quadratic through the wall (U = 0) and the first two
    interior points; ``y`` may include the wall points themselves."""
    interior = np.abs(y) < 1 - 1e-12
    y, mean_u = y[interior], mean_u[interior]
    slopes = []
    for first, second, wall in ((0, 1, -1.0), (-1, -2, 1.0)):
        a, b = abs(y[first] - wall), abs(y[second] - wall)
        slopes.append((mean_u[first] * b**2 - mean_u[second] * a**2) / (a * b * (b - a)))
    return float(np.mean(slopes))


def bulk_velocity(mean_u: np.ndarray, y: np.ndarray) -> float:
    """(1/2) ∫ U dy over the channel, by the trapezoid rule with U = 0 on the walls."""
    order = np.argsort(y)
    y, mean_u = y[order], mean_u[order]
    if y[0] > -1 + 1e-12:
        y, mean_u = np.concatenate([[-1.0], y]), np.concatenate([[0.0], mean_u])
    if y[-1] < 1 - 1e-12:
        y, mean_u = np.concatenate([y, [1.0]]), np.concatenate([mean_u, [0.0]])
    return float(np.trapezoid(mean_u, y) / 2)


def wall_units(velocity: np.ndarray, y: np.ndarray, nu: float, wall_axis: int = -2) -> dict[str, object]:
    """The trajectory's statistics in wall units (see :func:`profiles_in_wall_units`)."""
    return profiles_in_wall_units(channel_statistics(velocity, wall_axis), y, nu)


def profiles_in_wall_units(stats: dict[str, np.ndarray], y: np.ndarray, nu: float) -> dict[str, object]:
    """Profiles of :func:`channel_statistics` in wall units: u_τ from the mean wall shear, Re_τ,
    bulk and centreline velocity, bulk Reynolds number (2δU_b/ν), and the half-channel profiles
    against y+ (both halves folded, u'v' sign-corrected for the upper half)."""
    u_tau = float(np.sqrt(max(nu * wall_shear_rate(stats["mean_u"], y), 0.0)))
    scale = max(u_tau, TINY)
    bulk = bulk_velocity(stats["mean_u"], y)
    distance = 1 - np.abs(y)
    lower = y <= 0
    order = np.argsort(distance[lower])
    upper = y >= 0  # the centre node of an odd count belongs to both halves
    folded = {}
    for name, values in stats.items():
        sign = np.where(y > 0, -1.0, 1.0) if name == "reynolds_stress" else 1.0
        signed = values * sign
        # Mirror the upper half onto the lower half's heights.
        mirrored = np.interp(distance[lower], distance[upper][::-1], signed[upper][::-1]) if upper.any() else signed[lower]
        folded[name] = (0.5 * (signed[lower] + mirrored))[order]
    power = {"mean_u": 1, "rms_u": 1, "rms_v": 1, "rms_w": 1, "reynolds_stress": 2}
    return {
        "u_tau": u_tau,
        "re_tau": u_tau / nu,
        "bulk_velocity": bulk,
        "bulk_u_plus": bulk / scale,
        "centreline_u_plus": float(np.interp(0.0, y, stats["mean_u"])) / scale,
        "bulk_reynolds": 2 * bulk / nu,
        "y_plus": distance[lower][order] * u_tau / nu,
        "y_over_delta": distance[lower][order],
        **{f"{name}_plus": folded[name] / scale ** power[name] for name in stats},
    }


def energy_spectra(field: np.ndarray, axis: int, length: float) -> tuple[np.ndarray, np.ndarray]:
    """One-dimensional energy spectrum of the fluctuations of ``field`` along a periodic ``axis`` of
    length ``length``: wavenumbers k ≥ 0 and E(k), averaged over every other axis, with Σ E = variance."""
    values = np.moveaxis(np.asarray(field, dtype=np.float64), axis, -1)
    n = values.shape[-1]
    fluctuation = values - values.mean(axis=-1, keepdims=True)
    power = np.abs(np.fft.rfft(fluctuation, axis=-1) / n) ** 2
    power[..., 1 : (n + 1) // 2] *= 2  # each k > 0 stands for ±k (not the Nyquist mode)
    spectrum = power.reshape(-1, power.shape[-1]).mean(axis=0)
    return 2 * np.pi * np.arange(power.shape[-1]) / length, spectrum


def mkm_gates(units: dict[str, object]) -> dict[str, dict[str, float | bool]]:
    """The spin-up checks against MKM at Re_τ ≈ 180: centreline U+ within 2 % and the total shear
    stress -u'v'+ + dU+/dy+ within 3 % of 1 - y/δ over 0.2 ≤ y/δ ≤ 0.8; bulk U+ reported."""
    centreline = float(units["centreline_u_plus"])
    eta = np.asarray(units["y_over_delta"])
    u_plus, y_plus = np.asarray(units["mean_u_plus"]), np.asarray(units["y_plus"])
    total = np.asarray(units["reynolds_stress_plus"]) + np.gradient(u_plus, y_plus)
    inside = (eta >= SHEAR_STRESS_RANGE[0]) & (eta <= SHEAR_STRESS_RANGE[1])
    deviation = float(np.abs(total[inside] - (1 - eta[inside])).max()) if inside.any() else float("nan")
    reference = MKM_RE_TAU_180
    centre_error = centreline / reference["centreline_u_plus"] - 1
    bulk = float(units["bulk_u_plus"])
    bulk_error = bulk / reference["bulk_u_plus"] - 1
    return {
        "centreline_u_plus": {
            "value": centreline,
            "reference": reference["centreline_u_plus"],
            "relative_error": centre_error,
            "passed": bool(abs(centre_error) <= CENTRELINE_TOLERANCE),
        },
        "total_shear_stress": {
            "max_deviation": deviation,
            "tolerance": SHEAR_STRESS_TOLERANCE,
            "passed": bool(deviation <= SHEAR_STRESS_TOLERANCE),
        },
        "bulk_u_plus": {"value": bulk, "reference": reference["bulk_u_plus"], "relative_error": bulk_error},
        "re_tau": {"value": float(units["re_tau"]), "reference": reference["re_tau"]},
    }


# --------------------------------------------------------------------------- surrogate rollouts

PROFILES = ("mean_u", "rms_u", "rms_v", "rms_w", "reynolds_stress")
SPECTRA = ("spectrum_x_u", "spectrum_z_u")
ROLLOUT_SCORES = (*PROFILES, *SPECTRA, "re_tau")
SCORE_LABELS = {  # how tables and figures name each score
    "mean_u": "mean u", "rms_u": "u' rms", "rms_v": "v' rms", "rms_w": "w' rms", "reynolds_stress": "-u'v'",
    "spectrum_x_u": "E_u(k_x)", "spectrum_z_u": "E_u(k_z)", "re_tau": "Re_τ",
}  # fmt: skip


def friction_reynolds(velocity: np.ndarray, y: np.ndarray, nu: float) -> float:
    """Re_τ of a trajectory ``(T, 3, nz, ny, nx)`` from its mean wall shear."""
    return float(profiles_in_wall_units(channel_statistics(velocity), y, nu)["re_tau"])


def rollout_scores(
    pred: np.ndarray, truth: np.ndarray, y: np.ndarray, nu: float, length_x: float, length_z: float
) -> dict[str, float]:
    """How far a predicted trajectory's turbulence is from the true one's, both ``(T, 3, nz, ny, nx)``:
    the relative L2 error of each profile of :func:`channel_statistics`, of the one-dimensional energy
    spectra of u along x and z (k > 0), and the relative error of the friction Reynolds number. A
    rollout can have a small pointwise error and the wrong turbulence (a smoothed field), or the
    reverse (a decorrelated but statistically right one): these scores tell the two apart."""
    scores = channel_statistics_errors(pred, truth)
    for name, axis, length in (("spectrum_x_u", -1, length_x), ("spectrum_z_u", -3, length_z)):
        predicted, true = (energy_spectra(v[:, 0], axis, length)[1][1:] for v in (pred, truth))
        scores[name] = _relative_l2(predicted, true)
    scores["re_tau"] = abs(friction_reynolds(pred, y, nu) / max(friction_reynolds(truth, y, nu), TINY) - 1)
    return scores
