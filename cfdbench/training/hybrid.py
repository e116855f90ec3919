"""Training DCDM for the hybrid surrogate (:mod:`cfdbench.evaluation.hybrid`): its network learns the
Poisson system of one training case of the dataset, preferring a geometry no test case has, so that
the test systems stay held out.
"""

from __future__ import annotations

import time

import torch

from cfdbench.data.generate import DatasetGenerator
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.models.dcdm import DCDMSolver
from cfdbench.solvers.pressure import PressureSystem
from cfdbench.solvers.simulate import FlowCase, build_solver
from cfdbench.training.dcdm import train_dcdm


def _geometry(case: FlowCase) -> tuple:
    s = case.setup
    return (s.bc_x, round(s.length_x, 9), round(s.length_y, 9), s.block, s.disc, s.inlet_top)


def training_system(generator: DatasetGenerator, dataset: StoredDataset) -> tuple[dict, PressureSystem]:
    """(description, system) of the pressure problem DCDM trains on: that of the first training
    case whose geometry no test case shares (else the first training case)."""
    train = list(dataset.split("train"))
    if not train:
        raise CfdbenchError(f"{dataset.name}: no training case to train DCDM on")
    test_geometries = {_geometry(generator.cases[i]) for i in dataset.split("test")}
    chosen = next((i for i in train if _geometry(generator.cases[i]) not in test_geometries), train[0])
    case = generator.cases[chosen]
    cells = generator.cells(case)
    solver, _ = build_solver([case], *cells, torch.float64, "cpu")
    system = solver.pressure_operator.system(torch.zeros(solver.grid.p_shape, dtype=torch.float64), 0)
    description = {
        "problem": generator.problem,
        "dataset": dataset.name,
        "case": chosen,
        "cells": list(cells),
        "unknowns": int(system.matrix.shape[0]),
        "test_geometry_held_out": _geometry(case) not in test_geometries,
    }
    return description, system


def train_hybrid(model: DCDMSolver, dataset: StoredDataset, seed: int = 0) -> tuple[list[float], float]:
    """Train ``model``'s network on the dataset's training system in place; (losses, seconds)."""
    started = time.perf_counter()
    description, system = training_system(DatasetGenerator.of(dataset), dataset)
    h = model.hparams
    network = model.network.cpu()
    _, losses = train_dcdm(system, h["train_steps"], h["train_batch"], h["train_lr"], seed, network, h["lanczos_steps"])
    model.hparams["trained_on"] = description
    return losses, time.perf_counter() - started
