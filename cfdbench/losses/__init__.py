"""Training losses usable by any model (``sobolev``: H^s norms through Fourier multipliers)."""
