"""One MatterGen job inside MatterGen's own environment (executed by path, not imported).

    python mattergen_runner.py {sample|prefetch} SPEC_JSON RESULT_JSON ERROR_TXT

Needs only what a MatterGen environment has (mattergen, torch, pymatgen, numpy, the standard
library) plus two dependency-free modules of this project (screening, batch_files), imported by
putting the repo's ``src`` (from the spec) on ``sys.path``. ``sample`` loads the model once,
draws one batch with MatterGen's own sampler objects, screens each raw structure (junk becomes
a failure row with a reason) and writes the batch files; ``prefetch`` downloads a pretrained
checkpoint into the Hugging Face cache through MatterGen's ``from_hf_hub``. A problem the
user can fix is written as one line to ERROR_TXT with exit status 3; MatterGen's sampler failing on
the batch's own draw (exit status 4) is a failed batch, which the job records as failure rows.

Files the PyPI wheel of MatterGen lacks are supplied in the job's directory, only when missing,
so a full GitHub install runs unchanged: the sampling config (``sampling_conf/``) and the
GemNet scale file (``common/gemnet/gemnet-dT.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Run by path, Python puts this directory first on sys.path, where our adapter mattergen.py would
# shadow the real mattergen package.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
USER_ERROR_EXIT = 3
SAMPLER_ERROR_EXIT = 4
CUSTOM_DISTRIBUTION = "crystal_campaign_custom"
D3PM_SCHEDULE_KEY = (
    "lightning_module.diffusion_module.corruption.discrete_corruptions.atomic_numbers.d3pm.schedule"
)


class UserError(Exception):
    """A problem the user can fix; the adapter shows its one-line message."""


class SamplerError(Exception):
    """MatterGen's sampler failed on this batch's draw (e.g. GemNet on an exploded cell): the batch failed."""


def sampled_data_errors() -> tuple[type[BaseException], ...]:
    """What the sampled data itself raises (an empty neighbour graph, NaNs, a batch too large for
    the GPU); anything else, such as a broken CUDA or library install, stops the run instead."""
    import torch

    return (IndexError, ValueError, ArithmeticError, torch.OutOfMemoryError)


def published_sampling_config() -> dict:
    """MatterGen's documented default sampler, written by this project for installs that lack it.

    Predictor-corrector sampling over ``N`` noise levels stopping at t = 1/N: ancestral
    predictors for positions (wrapped), lattice and atom types (D3PM, predicting x0), then
    ``n_steps_corrector`` Langevin corrector steps for positions (snr 0.4) and lattice (snr 0.2),
    under classifier-free guidance whose scale the generator sets at run time.
    """
    wrapped = "mattergen.diffusion.wrapped.wrapped_predictors_correctors."
    lattice = "mattergen.common.diffusion.predictors_correctors."
    embeddings = "mattergen.property_embeddings."

    def partial(target: str, **arguments) -> dict:
        return {"_target_": target, "_partial_": True, **arguments}

    guided = "mattergen.diffusion.sampling.classifier_free_guidance.GuidedPredictorCorrector.from_pl_module"
    return {
        "sampler_partial": partial(
            guided,
            N=1000,
            eps_t="${eval:'1/${.N}'}",
            n_steps_corrector=1,
            guidance_scale=0.0,
            remove_conditioning_fn={"_target_": embeddings + "SetUnconditionalEmbeddingType"},
            keep_conditioning_fn={"_target_": embeddings + "SetConditionalEmbeddingType"},
            predictor_partials={
                "pos": partial(wrapped + "WrappedAncestralSamplingPredictor"),
                "cell": partial(lattice + "LatticeAncestralSamplingPredictor"),
                "atomic_numbers": partial(
                    "mattergen.diffusion.d3pm.d3pm_predictors_correctors.D3PMAncestralSamplingPredictor",
                    predict_x0=True,
                ),
            },
            corrector_partials={
                "pos": partial(wrapped + "WrappedLangevinCorrector", snr=0.4, max_step_size=1.0e6),
                "cell": partial(lattice + "LatticeLangevinDiffCorrector", snr=0.2, max_step_size=1.0e6),
            },
        ),
        "condition_loader_partial": partial(
            "mattergen.common.data.condition_factory.get_number_of_atoms_condition_loader"
        ),
    }


def sampling_config_dir(job_dir: Path) -> Path | None:
    """None when MatterGen has its own sampling configs; else a directory with ours."""
    from mattergen.common.utils.globals import DEFAULT_SAMPLING_CONFIG_PATH
    from omegaconf import OmegaConf

    if (DEFAULT_SAMPLING_CONFIG_PATH / "default.yaml").is_file():
        return None
    directory = job_dir / "sampling_conf"
    directory.mkdir(exist_ok=True)
    OmegaConf.save(OmegaConf.create(published_sampling_config()), directory / "default.yaml")
    return directory


def supply_gemnet_scale_file(job_dir: Path) -> None:
    """GemNetT reads scale factors from a fixed path at construction; the wheel does not ship it.

    The factors are parameters stored in every checkpoint, so loading overwrites whatever the
    file held: an empty file (every factor starts at 1.0) builds the same model.
    """
    import mattergen.common.gemnet.gemnet as gemnet

    if (Path(gemnet.MODELS_PROJECT_ROOT) / "common" / "gemnet" / "gemnet-dT.json").is_file():
        return
    scale_file = job_dir / "common" / "gemnet" / "gemnet-dT.json"
    scale_file.parent.mkdir(parents=True, exist_ok=True)
    scale_file.write_text("{}\n")
    gemnet.MODELS_PROJECT_ROOT = job_dir


def checkpoint_info(settings: dict, config_overrides: list[str]):
    """MatterGen's checkpoint handle for a local model_path or a pretrained name (Hugging Face cache)."""
    from mattergen.common.utils.data_classes import MatterGenCheckpointInfo

    if settings.get("model_path"):
        model_path = Path(settings["model_path"]).expanduser().resolve()
        if not (model_path / "config.yaml").is_file() or not list(model_path.rglob("*.ckpt")):
            raise UserError(
                f"model_path {str(model_path)!r} has no config.yaml and checkpoints/*.ckpt; "
                "point it at a MatterGen model directory"
            )
        return MatterGenCheckpointInfo(model_path=str(model_path), config_overrides=config_overrides)
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return MatterGenCheckpointInfo.from_hf_hub(
            settings["model"], repository_name=settings["hf_repository"], config_overrides=config_overrides
        )
    except LocalEntryNotFoundError as error:
        raise UserError(
            f"pretrained checkpoint {settings['model']!r} is not in the Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and cannot be downloaded here: run "
            "`crystal-campaign prefetch --configfile <config>` on a machine with internet first"
        ) from error


def d3pm_overrides(info, steps: int) -> list[str]:
    """Make the atom-type diffusion (D3PM) schedule match ``steps``: the sampler requires it."""
    from omegaconf import OmegaConf

    schedule = OmegaConf.select(info.config, D3PM_SCHEDULE_KEY)
    if schedule is None or schedule.num_steps == steps:
        return []
    return [f"{D3PM_SCHEDULE_KEY}.num_steps={steps}"]


def atoms_distribution(setting) -> str:
    """A MatterGen distribution name; a mapping {atoms: weight} is registered under our own name."""
    from mattergen.common.data.num_atoms_distribution import NUM_ATOMS_DISTRIBUTIONS

    if isinstance(setting, str):
        if setting not in NUM_ATOMS_DISTRIBUTIONS:
            raise UserError(
                f"num_atoms_distribution {setting!r} is unknown; "
                f"allowed: {', '.join(NUM_ATOMS_DISTRIBUTIONS)} or a mapping {{atoms: weight}}"
            )
        return setting
    total = sum(setting.values())
    NUM_ATOMS_DISTRIBUTIONS[CUSTOM_DISTRIBUTION] = {int(n): w / total for n, w in setting.items()}
    return CUSTOM_DISTRIBUTION


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def draw_batch(generator, batch_size: int) -> list:
    """One batch from MatterGen's own sampler, as raw ChemGraphs (no file written by MatterGen)."""
    from hydra.utils import instantiate

    sampling_config = generator.load_sampling_config(batch_size=batch_size, num_batches=1)
    condition_loader = generator.get_condition_loader(sampling_config)
    sampler = instantiate(sampling_config.sampler_partial)(pl_module=generator.model)
    graphs = []
    for conditioning_data, mask in condition_loader:
        try:
            _, mean = sampler.sample(conditioning_data, mask)
        except sampled_data_errors() as error:
            raise SamplerError(f"MatterGen's sampler failed: {type(error).__name__}: {error}") from error
        graphs.extend(mean.to_data_list())
    return graphs


def screen(graphs: list) -> list[tuple]:
    """(structure, reason) per raw sample: junk (NaN, mask species, huge or empty cells) gets a reason.

    MatterGen's atom types are its elements 1..MAX_ATOMIC_NUM plus a mask class, which comes out
    as atomic number MAX_ATOMIC_NUM + 1 when a sample keeps it.
    """
    from mattergen.common.utils.globals import MAX_ATOMIC_NUM

    from crystal_campaign.screening import to_structure

    return [
        to_structure(
            graph["atomic_numbers"].cpu().numpy(),
            graph["cell"].reshape(3, 3).cpu().numpy(),
            graph["pos"].reshape(-1, 3).cpu().numpy(),
            max_atomic_number=MAX_ATOMIC_NUM,
        )
        for graph in graphs
    ]


def check_conditioning(generator, properties: dict) -> None:
    trained_on = list(generator.model.diffusion_module.model.cond_fields_model_was_trained_on)
    unknown = sorted(set(properties) - set(trained_on))
    if unknown:
        raise UserError(
            f"the model was not trained to condition on {', '.join(unknown)}; "
            f"it conditions on: {', '.join(trained_on) or 'nothing (unconditional model)'}"
        )


def environment_versions() -> dict:
    import torch

    versions = {"python_mattergen_env": platform.python_version(), "torch_cuda": torch.version.cuda or "none"}
    for name in ("mattergen", "torch", "pymatgen", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_sample(spec: dict) -> dict:
    import torch
    from mattergen.common.utils.globals import get_device
    from mattergen.generator import CrystalGenerator

    from crystal_campaign.batch_files import file_sha256, sample_sidecar, structure_record, write_batch

    start = time.perf_counter()
    settings, job_dir, sampler = spec["settings"], Path(spec["job_dir"]), spec["sampler"]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if settings["device"].startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device {settings['device']}: no CUDA GPU is visible to this job; "
            "request a GPU for it or set device: auto or cpu"
        )
    supply_gemnet_scale_file(job_dir)
    info = checkpoint_info(settings, [])
    overrides = d3pm_overrides(info, sampler["steps"])
    if overrides:
        info = dataclasses.replace(info, config_overrides=overrides)
    properties = settings["properties_to_condition_on"] or None
    generator = CrystalGenerator(
        checkpoint_info=info,
        batch_size=settings["batch_size"],
        num_batches=1,
        num_atoms_distribution=atoms_distribution(settings["num_atoms_distribution"]),
        diffusion_guidance_factor=settings["diffusion_guidance_factor"],
        properties_to_condition_on=properties,
        sampling_config_overrides=[
            f"sampler_partial.N={sampler['steps']}",
            f"sampler_partial.n_steps_corrector={sampler['corrector_steps']}",
            *sampler["overrides"],
        ],
        sampling_config_path=sampling_config_dir(job_dir),
        record_trajectories=False,
    )
    generator.prepare()
    check_conditioning(generator, properties or {})
    loaded = time.perf_counter()
    seed_everything(spec["seed"])
    print(  # the job's log: a sampling job is quiet for minutes otherwise
        f"sampling {settings['batch_size']} structures: {sampler['label']} on {get_device()} "
        f"(model loaded in {loaded - start:.1f} s)",
        flush=True,
    )
    graphs = draw_batch(generator, settings["batch_size"])
    sampled = time.perf_counter()
    screened = screen(graphs)
    name, batch, source = settings["name"], spec["batch"], spec["model_label"]
    records = [
        structure_record(record_id, index, structure, reason, generator=name, batch=batch, source=source)
        for index, (record_id, (structure, reason)) in enumerate(zip(spec["ids"], screened, strict=True))
    ]
    sidecar = sample_sidecar(
        records,
        campaign=spec["campaign"],
        settings=settings,
        batch=batch,
        seed=spec["seed"],
        stats={  # model fields as every generator's stats have them (the summary reads them)
            "model": spec["model_label"],
            "checkpoint": str(Path(info.checkpoint_path).resolve()),
            "checkpoint_sha256": file_sha256(info.checkpoint_path),
            "load_s": round(loaded - start, 3),
            "sample_s": round(sampled - loaded, 3),
            "structures_per_s": round(len(graphs) / max(sampled - loaded, 1e-9), 4),
        },
        wall_time_s=time.perf_counter() - start,
        versions={**spec["versions"], **environment_versions()},
        conditioning=properties or {},
        diffusion_guidance_factor=settings["diffusion_guidance_factor"],
        sampler=sampler,
        device=str(get_device()),
    )
    write_batch(spec["path"], records, sidecar)
    return {"n_records": len(records)}


def run_prefetch(spec: dict) -> dict:
    from crystal_campaign.batch_files import file_sha256

    info = checkpoint_info(spec["settings"], [])
    return {"model_dir": str(info.model_path), "checkpoint_sha256": file_sha256(info.checkpoint_path)}


def main(mode: str, spec_path: str, result_path: str, error_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    sys.path.insert(0, spec["src"])
    try:
        result = {"sample": run_sample, "prefetch": run_prefetch}[mode](spec)
    except UserError as error:
        Path(error_path).write_text(f"{error}\n")
        return USER_ERROR_EXIT
    except SamplerError as error:
        traceback.print_exc()  # the whole story goes to the job's log
        Path(error_path).write_text(f"{error}\n")
        return SAMPLER_ERROR_EXIT
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
