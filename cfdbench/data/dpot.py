"""The DPOT-compatible task on CFDBench's release: what the CFDBench column of DPOT's Table 1
(Hao et al., ICML 2024) measures, stated so that cfdbench entries can be set beside it.

- data: CFDBench's cavity, tube and cylinder, subsets ``prop_bc_geo`` (DPOT omits the dam), split
  by CFDBench's autoregressive rule, u and v with the fluid mask as an input channel;
- frames 0.1 s apart: the release stores the cavity every 0.1 s, the tube every 0.01 s and the
  cylinder every 0.001 s, so conversion keeps every 1st, 10th and 100th frame;
- 10 input frames -> the next frame;
- score: DPOT's relative L2 error per sample, the mean over u and v of
  ``||p_c - y_c||_2 / (||y_c||_2 + 1e-8)`` (metric ``l2re``), averaged over the test samples.

``cfdbench data convert cfdbench/<problem> --task dpot`` writes ``cfdbench-<problem>-prop_bc_geo-dpot``;
train and evaluate with ``--set input_frames=10``. docs/leaderboard.md gives the published values
and how DPOT's released preprocessing departs from this statement of its protocol.
"""

from __future__ import annotations

from cfdbench.errors import CfdbenchError

DPOT_PROBLEMS = ("cavity", "tube", "cylinder")
DPOT_DELTA_TIME = 0.1  # seconds between the frames a model sees
DPOT_INPUT_FRAMES = 10
DPOT_SUBSETS = "prop_bc_geo"


def check_dpot_problem(problem: str) -> None:
    if problem not in DPOT_PROBLEMS:
        raise CfdbenchError(f"--task dpot: DPOT's CFDBench data are {', '.join(DPOT_PROBLEMS)}; it omits the {problem}")


def dpot_stride(frame_interval: float, where: str) -> int:
    """Stored frames per 0.1 s: 1 for 0.1 s frames, 10 for 0.01 s, 100 for 0.001 s. Refuses an
    interval that 0.1 s is not a whole multiple of (``where`` names the case)."""
    stride = round(DPOT_DELTA_TIME / frame_interval)
    if stride < 1 or abs(stride * frame_interval - DPOT_DELTA_TIME) > 1e-9 * DPOT_DELTA_TIME:
        raise CfdbenchError(f"{where}: frames {frame_interval:g} s apart cannot be taken every {DPOT_DELTA_TIME} s (--task dpot)")
    return stride
