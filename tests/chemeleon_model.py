"""A Chemeleon-DNG checkpoint with random weights, for tests and for timing an architecture."""

from __future__ import annotations

from pathlib import Path


def write_random_checkpoint(
    path: str | Path,
    task: str,
    *,
    hidden_dim: int,
    num_layers: int,
    num_timesteps: int,
    beta_schedule: str,
    seed: int,
) -> Path:
    """A Chemeleon checkpoint with random weights, loaded like a released one.

    For tests (tiny sizes) and for timing an architecture without its trained weights; the
    sizes, step count and noise schedule are the caller's choice.
    """
    import pytorch_lightning
    import torch
    from chemeleon_dng.script_util import create_diffusion_module

    torch.manual_seed(seed)
    module = create_diffusion_module(
        task=task,
        model_configs={
            "hidden_dim": hidden_dim,
            "time_dim": hidden_dim // 2,
            "num_layers": num_layers,
            "max_atoms": 100,
            "act_fn": "silu",
            "dis_emb": "sin",
            "num_freqs": 128,
            "ln": True,
            "ip": True,
            "smooth": False,
            "cond_dim": 0,
            "pred_atom_types": task == "dng",
        },
        optimizer_configs={
            "optimizer": "adamw",
            "lr": 1e-4,
            "weight_decay": 0.0,
            "scheduler": "none",
            "patience": 1,
            "early_stopping": 1,
        },
        num_timesteps=num_timesteps,
        beta_schedule_ddpm=beta_schedule,
        beta_schedule_d3pm=beta_schedule,
        max_atoms=100,
        d3pm_hybrid_coeff=0.01,
        sigma_begin=0.005,
        sigma_end=0.5,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": module.state_dict(),
            module.CHECKPOINT_HYPER_PARAMS_KEY: dict(module.hparams),
            "pytorch-lightning_version": pytorch_lightning.__version__,
        },
        path,
    )
    return path
