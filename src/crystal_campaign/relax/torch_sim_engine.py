"""The torch-sim engine: relaxation that stays on the device.

torch-sim (torch-sim-atomistic) holds the running structures as one batched state on the device,
computes their neighbour lists there (its MACE model), sizes batches (its memory estimate on a
GPU, else the configured atom budget) and swaps structures that finish out of the batch and
waiting ones in (its in-flight autobatcher), so a slow structure never holds a batch back.

The optimizer step is ASE's FIRE through ASE's Frechet cell filter, written once for the whole
batch: the per-structure loop's algorithm, parameters and convergence test (the largest force on
the filter's degrees of freedom below fmax), so results agree with it up to rounding. torch-sim
0.3.0's own Frechet FIRE step is not used: it loops over structures in Python (nine Frechet
derivatives each, 1.47 ms of host time per structure-step measured on a CPU, more than the
model's forward pass of the tests' MACE), mixes velocities with the next step's alpha, and skips
velocity mixing for the whole batch whenever one structure enters it. Here the cell force of
every structure is one adjoint Frechet derivative of the matrix exponential, all of them in one
batched ``torch.linalg.matrix_exp``.

Each structure keeps its own step count against ``max_steps``, its own explosion stop and its
own result row; a batch that runs out of memory is halved and the structures in it go on from
where they were.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import torch
import torch_sim
from pymatgen.core import Structure
from torch_sim.autobatching import (
    BinningAutoBatcher,
    InFlightAutoBatcher,
    calculate_memory_scaler,
    estimate_max_memory_scaler,
)
from torch_sim.state import concatenate_states

from crystal_campaign.io import Progress
from crystal_campaign.relax.base import (
    EngineRun,
    EngineStats,
    RelaxResult,
    explosion,
    finished,
)
from crystal_campaign.relax.batched import is_out_of_memory, release_memory

log = logging.getLogger(__name__)

# ASE FIRE's defaults (ase.optimize.FIRE), which the per-structure engine uses
DT_START, DT_MAX, N_MIN, F_INC, F_DEC, ALPHA_START, F_ALPHA, MAX_STEP = 0.1, 1.0, 5, 1.1, 0.5, 0.1, 0.99, 0.2


def per_system(atom_values: torch.Tensor, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Sums over each structure's atoms of per-atom rows (summed over their last axis)."""
    totals = atom_values.new_zeros(n_systems)
    return totals.index_add(0, system_idx, atom_values.sum(dim=-1))


def frechet_cell_forces(log_deformation: torch.Tensor, cell_gradient: torch.Tensor) -> torch.Tensor:
    """ASE's Frechet cell forces before the cell factor: entry (m, n) is <L(X, E_mn), G>, the
    directional derivative of exp at X = log F along E_mn against the unit-cell-filter gradient G.
    By the adjoint identity that is L(X^T, G), the upper-right block of exp([[X^T, G], [0, X^T]])."""
    n = len(log_deformation)
    block = log_deformation.new_zeros((n, 6, 6))
    block[:, :3, :3] = log_deformation.mT
    block[:, 3:, 3:] = log_deformation.mT
    block[:, :3, 3:] = cell_gradient
    return torch.linalg.matrix_exp(block)[:, :3, 3:]


def cell_forces(state, stress: torch.Tensor, relax_cell: bool) -> torch.Tensor:
    """Forces on the Frechet filter's cell degrees of freedom (zero when the cell is held)."""
    if not relax_cell:
        return torch.zeros_like(state.cell_positions)
    deformation = state.deform_grad()
    volumes = torch.linalg.det(state.row_vector_cell).view(-1, 1, 1)
    virial = -volumes * stress
    # virial @ inv(F^T)
    gradient = torch.linalg.solve(deformation, virial.mT).mT
    return frechet_cell_forces(state.cell_positions / state.cell_factor, gradient) / state.cell_factor


def filter_forces(state, deformation: torch.Tensor) -> torch.Tensor:
    """Forces on the filter's atomic degrees of freedom: the atoms' forces in the undeformed frame
    (``deformation``: each structure's deformation gradient)."""
    return torch.bmm(state.forces.unsqueeze(1), deformation[state.system_idx]).squeeze(1)


def filter_max_force(state) -> torch.Tensor:
    """Each structure's largest force on any filter degree of freedom (ASE's convergence test)."""
    atom_norms = filter_forces(state, state.deform_grad()).norm(dim=1)
    largest = atom_norms.new_zeros(state.n_systems).scatter_reduce(
        0, state.system_idx, atom_norms, reduce="amax", include_self=True
    )
    return torch.maximum(largest, state.cell_forces.norm(dim=2).amax(dim=1))


def fire_step(state, evaluate: Callable, relax_cell: bool):
    """One ASE FIRE step of every structure in the batch, then its forces at the new positions.

    A structure without velocities yet (NaN: it has just entered) starts from rest, as ASE's FIRE
    does on its first step. Returns a new state; the given one is left as it was, so a step that
    runs out of memory can be retried from it.
    """
    system_idx, n = state.system_idx, state.n_systems
    deformation = state.deform_grad()
    forces = filter_forces(state, deformation)
    cell_force = state.cell_forces
    starting = torch.isnan(state.cell_velocities[:, 0, 0])
    velocities = torch.nan_to_num(state.velocities, nan=0.0)
    cell_velocities = torch.nan_to_num(state.cell_velocities, nan=0.0)

    power = per_system(forces * velocities, system_idx, n) + (cell_force * cell_velocities).sum(dim=(1, 2))
    force_norm = (per_system(forces**2, system_idx, n) + (cell_force**2).sum(dim=(1, 2))).sqrt()
    speed = (per_system(velocities**2, system_idx, n) + (cell_velocities**2).sum(dim=(1, 2))).sqrt()
    downhill = (power > 0) & ~starting
    uphill = ~downhill & ~starting
    # velocities turned towards the forces (downhill) or stopped (uphill, or starting from rest)
    keep = torch.where(downhill, 1 - state.alpha, 0.0)
    turn = torch.where(downhill, state.alpha * speed / torch.where(downhill, force_norm, 1.0), 0.0)
    velocities = keep[system_idx, None] * velocities + turn[system_idx, None] * forces
    cell_velocities = keep.view(n, 1, 1) * cell_velocities + turn.view(n, 1, 1) * cell_force

    accelerate = downhill & (state.n_pos > N_MIN)
    dt = torch.where(accelerate, (state.dt * F_INC).clamp(max=DT_MAX), state.dt)
    dt = torch.where(uphill, dt * F_DEC, dt)
    alpha = torch.where(accelerate, state.alpha * F_ALPHA, state.alpha)
    alpha = torch.where(uphill, torch.full_like(alpha, ALPHA_START), alpha)
    n_pos = torch.where(downhill, state.n_pos + 1, torch.where(uphill, 0, state.n_pos))

    velocities = velocities + dt[system_idx, None] * forces
    cell_velocities = cell_velocities + dt.view(n, 1, 1) * cell_force
    step = dt[system_idx, None] * velocities
    cell_step = dt.view(n, 1, 1) * cell_velocities
    length = (per_system(step**2, system_idx, n) + (cell_step**2).sum(dim=(1, 2))).sqrt()
    shorten = torch.where(length > MAX_STEP, MAX_STEP / length, 1.0)
    step = step * shorten[system_idx, None]
    cell_step = cell_step * shorten.view(n, 1, 1)

    undeformed = torch.linalg.solve(deformation[system_idx], state.positions.unsqueeze(-1)).squeeze(-1)
    cell_positions = state.cell_positions + cell_step
    new_deformation = torch.linalg.matrix_exp(cell_positions / state.cell_factor)
    moved = copy.copy(state)
    moved.positions = torch.bmm((undeformed + step).unsqueeze(1), new_deformation[system_idx].mT).squeeze(1)
    moved.row_vector_cell = torch.bmm(state.reference_row_vector_cell, new_deformation.mT)
    moved.velocities, moved.cell_velocities, moved.cell_positions = (
        velocities,
        cell_velocities,
        cell_positions,
    )
    moved.dt, moved.alpha, moved.n_pos = dt, alpha, n_pos
    output = evaluate(moved)
    moved.energy, moved.forces, moved.stress = output["energy"], output["forces"], output["stress"]
    moved.cell_forces = cell_forces(moved, output["stress"], relax_cell)
    return moved


def finite_systems(output: dict, system_idx: torch.Tensor, n_systems: int) -> torch.Tensor:
    bad_atoms = (~torch.isfinite(output["forces"])).any(dim=1).to(output["forces"].dtype)
    bad = per_system(bad_atoms.unsqueeze(1), system_idx, n_systems) > 0
    return torch.isfinite(output["energy"]) & ~bad & torch.isfinite(output["stress"]).flatten(1).all(dim=1)


class CountedModel:
    """The torch-sim model as the engine calls it: model calls counted, and where a call gives
    non-finite values, halves evaluated again, down to single structures (one structure's NaN
    energy, e.g. two atoms on one site, makes its batch mates' forces NaN too; re-evaluating
    without it keeps theirs exact)."""

    def __init__(self, model, stats: EngineStats) -> None:
        self.model = model
        self.stats = stats
        self.device, self.dtype = model.device, model.dtype

    def __call__(self, state) -> dict:
        output = self.model(state)
        self.stats.model_calls += 1
        n = state.n_systems
        if n == 1 or bool(finite_systems(output, state.system_idx, n).all()):
            return output
        halves = [self(state[list(range(n // 2))]), self(state[list(range(n // 2, n))])]
        return {key: torch.cat([half[key] for half in halves]) for key in ("energy", "forces", "stress")}


@dataclasses.dataclass
class Waiting:
    """A structure started (its first forces taken) and waiting for a place in a batch."""

    index: int
    state: object


class TorchSimEngine:
    def relax(self, structures: list[Structure], run: EngineRun) -> list[RelaxResult]:
        return _Relaxation(structures, run.potentials.torch_sim_model(), run).run()


class _Relaxation:
    """One engine run: starts structures in budgeted chunks, then steps in-flight batches."""

    def __init__(self, structures: list[Structure], model, run: EngineRun) -> None:
        self.structures = structures
        self.model = model
        self.settings = settings = run.settings
        self.stats = run.stats
        self.on_finished = run.on_finished
        self.evaluate = CountedModel(model, run.stats)
        # torch-sim's start of a Frechet FIRE relaxation: first forces, cell factor, FIRE state
        self.start_fn, _ = torch_sim.frechet_cell_fire(self.evaluate)
        self.results: list[RelaxResult | None] = [None] * len(structures)
        self.steps = np.zeros(len(structures), dtype=int)
        self.engine_step = 0
        self.progress = Progress("relaxed structures", len(structures))
        self.memory_scales_with = "n_atoms"
        self.scalers = [len(structure) for structure in structures]
        self.budget = float(settings.max_batch_atoms)

    def run(self) -> list[RelaxResult]:
        if self.structures:
            waiting = self.start_all()
            while waiting:
                waiting = self.relax_in_flight(waiting)
        return self.results

    def start_all(self) -> list[Waiting]:
        """Every structure's first forces, in chunks under the budget (halved on out of memory);
        structures that are converged or have exploded there never enter a batch."""
        indices = list(range(len(self.structures)))
        states = torch_sim.initialize_state(self.structures, self.model.device, self.model.dtype).split()
        if self.settings.measure_memory:  # torch-sim's estimate of what fits on this GPU
            self.memory_scales_with = self.model.memory_scales_with
            self.scalers = [calculate_memory_scaler(s, self.memory_scales_with) for s in states]
            # torch-sim's own margin for its in-flight batches (optimize's max_memory_padding)
            self.budget = 0.9 * estimate_max_memory_scaler(self.model, states, self.scalers)
        binning = BinningAutoBatcher(
            self.model,
            memory_scales_with=self.memory_scales_with,
            max_memory_scaler=max(self.budget, max(self.scaler_of(i) for i in indices)),
            return_indices=True,
        )
        binning.load_states(states)
        chunks = [sorted(index_bin) for index_bin in binning.index_bins]  # {index: scaler} bins
        waiting: list[Waiting] = []
        while chunks:
            chunk = chunks.pop()
            try:
                started = self.start_fn(concatenate_states([states[i] for i in chunk]))
            except Exception as error:  # out of memory, or a structure the model cannot take
                release_memory()
                if len(chunk) == 1:
                    self.fail(chunk[0], error)
                    continue
                self.stats.splits += 1
                chunks += [chunk[len(chunk) // 2 :], chunk[: len(chunk) // 2]]
                continue
            if not self.settings.relax_cell:
                started.cell_forces = torch.zeros_like(started.cell_forces)
            done = self.finish_done(started, chunk)
            waiting += [
                Waiting(index, single)
                for index, single, ended in zip(chunk, started.split(), done, strict=True)
                if not ended
            ]
        return sorted(waiting, key=lambda w: w.index)

    def scaler_of(self, index: int) -> float:
        return float(self.scalers[index])

    def relax_in_flight(self, waiting: list[Waiting]) -> list[Waiting]:
        """Step in-flight batches until every structure has ended; on out of memory (or any model
        error), the structures of the batch and those still waiting, to go on with a budget of half
        that batch (a structure that fails alone is a failed row)."""
        batcher = InFlightAutoBatcher(
            self.model,
            memory_scales_with=self.memory_scales_with,
            max_memory_scaler=max(self.budget, max(self.scaler_of(w.index) for w in waiting)),
            return_indices=True,
        )
        order = [w.index for w in waiting]
        batcher.load_states(iter([w.state for w in waiting]))
        state, _, positions = batcher.next_batch(None, None)
        current = [order[p] for p in positions]
        self.stats.sub_batches += 1
        while state is not None:
            for index in current:
                self.stats.entered.setdefault(index, self.engine_step)
            self.progress.tick(f"engine step {self.engine_step}: {len(current)} structures in the batch")
            try:
                state = fire_step(state, self.evaluate, self.settings.relax_cell)
            except Exception as error:  # out of memory, or a structure the model cannot take
                release_memory()
                return self.shrink(state, current, batcher, order, error)
            self.steps[current] += 1
            self.engine_step += 1
            done = self.finish_done(state, current)
            if done.any():
                state, _, positions = batcher.next_batch(state, torch.as_tensor(done, device=state.device))
                current = [order[p] for p in positions]
        return []

    def shrink(
        self, state, current: list[int], batcher, order: list[int], error: BaseException
    ) -> list[Waiting]:
        remaining = list(batcher.states_iterator)
        still_waiting = [
            Waiting(index, single)
            for index, single in zip(order[batcher.iterator_idx :], remaining, strict=True)
        ]
        if len(current) == 1:
            self.fail(current[0], error)
            return still_waiting
        self.stats.splits += 1
        self.budget = sum(self.scaler_of(i) for i in current) / 2
        kind = "out of memory" if is_out_of_memory(error) else f"{type(error).__name__}"
        log.warning("batch of %d structures: %s; going on with half the budget", len(current), kind)
        in_flight = [Waiting(index, single) for index, single in zip(current, state.split(), strict=True)]
        return sorted(in_flight + still_waiting, key=lambda w: w.index)

    def finish_done(self, state, indices: list[int]) -> np.ndarray:
        """Result rows of the structures that end at this state (exploded, converged, out of
        steps); which ones ended. Decided for the whole batch on the device, in one transfer."""
        settings = self.settings
        ratio = torch.linalg.det(state.row_vector_cell) / torch.linalg.det(state.reference_row_vector_cell)
        outputs = {"energy": state.energy, "forces": state.forces, "stress": state.stress}
        finite = finite_systems(outputs, state.system_idx, state.n_systems)
        bounded = (ratio >= 1 / settings.max_volume_ratio) & (ratio <= settings.max_volume_ratio)
        converged = filter_max_force(state) < settings.fmax
        flags = torch.stack([finite & bounded, converged]).cpu().numpy()
        out_of_steps = self.steps[indices] >= settings.max_steps
        done = ~flags[0] | flags[1] | out_of_steps
        ended = np.flatnonzero(done).tolist()
        if not ended:
            return done
        finished_state = state[ended]
        energy = finished_state.energy.detach().cpu().numpy()
        forces = finished_state.forces.detach().cpu().numpy()
        ratio = ratio[ended].detach().cpu().numpy()
        bounds = np.concatenate([[0], np.cumsum(finished_state.n_atoms_per_system.cpu().numpy())])
        structures = finished_state.to_structures()
        for row, position in enumerate(ended):
            index = indices[position]
            own_forces = forces[bounds[row] : bounds[row + 1]]
            failure = explosion(float(energy[row]), own_forces, float(ratio[row]), settings.max_volume_ratio)
            if failure is not None:
                failure.n_steps = int(self.steps[index])
                self.end(index, failure)
                continue
            converged_here = bool(flags[1][position])
            self.end(
                index,
                finished(
                    structures[row], energy[row], own_forces, self.steps[index], converged_here, ratio[row]
                ),
            )
        return done

    def end(self, index: int, result: RelaxResult) -> None:
        self.results[index] = result
        self.stats.left[index] = self.engine_step
        self.on_finished(index, result)
        self.progress.advance()

    def fail(self, index: int, error: BaseException) -> None:
        kind = "out of memory" if is_out_of_memory(error) else "relaxation error"
        self.end(
            index,
            RelaxResult(
                "failed",
                n_steps=int(self.steps[index]),
                reason=f"{kind}: {type(error).__name__}: {error}"[:500],
            ),
        )


ENGINE = TorchSimEngine()
