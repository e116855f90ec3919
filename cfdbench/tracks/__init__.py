"""Benchmark tracks beside the model leaderboard, run and published end to end (orchestration, at the
pipeline's level): ``linear_solvers``, the learned-solver track (DCDM against CG and multigrid)."""
