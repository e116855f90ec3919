"""Masked pointwise metrics against direct computations on synthetic fields."""

import numpy as np
import pytest
import torch

from cfdbench.evaluation.metrics import MetricAccumulator, evaluate_all


def synthetic(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    pred = torch.tensor(rng.normal(size=(batch, 2, 8, 10)))
    target = torch.tensor(rng.normal(size=(batch, 2, 8, 10)))
    mask = torch.ones(batch, 1, 8, 10, dtype=torch.float64)
    mask[:, :, 2:5, 3:7] = 0  # an obstacle
    return pred, target, mask


def test_metrics_match_direct_formulas_inside_the_mask():
    pred, target, mask = synthetic()
    values = evaluate_all(pred, target, mask)
    for b in range(pred.shape[0]):
        fluid = mask[b, 0].bool()
        p, y = pred[b][:, fluid].numpy(), target[b][:, fluid].numpy()
        err = p - y
        assert values["mse"][b] == pytest.approx(np.mean(err**2))
        assert values["mae"][b] == pytest.approx(np.mean(np.abs(err)))
        assert values["nmse"][b] == pytest.approx(np.sum(err**2) / np.sum(y**2))
        assert values["max_abs"][b] == pytest.approx(np.abs(err).max())
        assert values["rel_l2"][b] == pytest.approx(np.linalg.norm(err) / np.linalg.norm(y))


def test_values_in_solids_never_count():
    pred, target, mask = synthetic()
    spoiled = pred.clone()
    spoiled[:, :, 2:5, 3:7] = 1e6  # garbage inside the obstacle
    clean, dirty = evaluate_all(pred, target, mask), evaluate_all(spoiled, target, mask)
    for name in clean:
        torch.testing.assert_close(clean[name], dirty[name])


def test_perfect_prediction_scores_zero_and_identity_scores_one_nmse_from_rest():
    _, target, mask = synthetic()
    assert all(float(v.max()) == 0 for v in evaluate_all(target, target, mask).values())
    # Predicting zeros (the state at rest) has NMSE exactly 1.
    assert evaluate_all(torch.zeros_like(target), target, mask)["nmse"] == pytest.approx(torch.ones(3, dtype=torch.float64))


def test_accumulator_averages_per_sample_not_per_batch():
    pred, target, mask = synthetic(batch=5)
    acc = MetricAccumulator()
    acc.update(pred[:4], target[:4], mask[:4])
    acc.update(pred[4:], target[4:], mask[4:])  # uneven batches
    direct = evaluate_all(pred, target, mask)
    for name, mean in acc.mean().items():
        assert mean == pytest.approx(float(direct[name].mean()))
