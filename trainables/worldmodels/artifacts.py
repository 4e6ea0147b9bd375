"""The world-model family's artefact formats (written at the final evaluation by
:func:`.metrics.evaluate`; see :mod:`trainables.common.artifacts`).

Both come from one long free rollout (action 0, no forcing, :data:`LONG_FACTOR` times the
test sequences' length, at the data's dt) of the first :data:`LONG_SEQS` test sequences from
their first state, by the model and by the reference integrator. States are ``[q, v]`` in the
env's units (``v`` is the generalised velocity, not the momentum); energies are the env's true
energy function.
"""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

LONG_FACTOR = 4
"""The long free rollout's length in test-sequence lengths (200 samples for the default 50)."""
LONG_SEQS = 4
"""Test sequences rolled out."""
PHASE_SEQS = 3
"""Test sequences kept in the phase artefact."""

ENERGY = ArtifactFormat(
    "worldmodels.energy", 1, "energy.parquet",
    pa.schema([("seq", pa.int32()), ("step", pa.int32()), ("t", pa.float64()), ("energy_true", pa.float64()),
               ("energy_pred", pa.float64()), ("learned_h", pa.float64())]),
    "one row per sample of the long free rollout of each test sequence: time (s), the env's energy of the "
    "reference states and of the model's predicted states, and the model's learned H of its predicted states "
    "(port_hamiltonian; NaN for the other models; H has an arbitrary offset)")
PHASE = ArtifactFormat(
    "worldmodels.phase", 1, "phase.parquet",
    pa.schema([("seq", pa.int32()), ("step", pa.int32()), ("t", pa.float64()), ("pair", pa.int32()),
               ("q_name", pa.string()), ("v_name", pa.string()), ("q_true", pa.float64()), ("v_true", pa.float64()),
               ("q_pred", pa.float64()), ("v_pred", pa.float64())]),
    "one row per sample, test sequence and coordinate pair (q_i, v_i) of the long free rollout: reference and "
    "predicted configuration and velocity")
HORIZON_CURVE = ArtifactFormat(
    "worldmodels.horizon_curve", 1, "horizon_curve.parquet",
    pa.schema([("step", pa.int32()), ("t", pa.float64()), ("state", pa.string()), ("mse", pa.float64())]),
    "the open-loop test rollout's normalised MSE at every horizon step (1 .. sequence length), mean over the "
    "test sequences: one row per step and state dimension, plus state 'all' (the mean over dimensions)")
FORMATS = (ENERGY, PHASE, HORIZON_CURVE)
