"""Build a random-initialised MatterGen model directory (run with the MatterGen environment's python).

    python tests/mattergen_model.py OUT_DIR [--chemical-system] [--steps N] [--full-size]

Writes ``OUT_DIR/config.yaml`` (resolved) and ``OUT_DIR/checkpoints/last.ckpt``, the layout that
``MatterGenCheckpointInfo`` loads. The PyPI wheel has no Hydra model configs, so this script
writes MatterGen's published architecture (GemNet-T denoiser, 512 hidden, 4 blocks, 7 Å
cutoff; wrapped VE-SDE positions, VP-SDE lattice, masked D3PM atom types) as a config of its
own, and Hydra composes it with small overrides into a tiny model unless --full-size.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

TINY_OVERRIDES = [
    "lightning_module.diffusion_module.model.hidden_dim=16",
    "lightning_module.diffusion_module.model.gemnet.num_blocks=1",
    "lightning_module.diffusion_module.model.gemnet.num_radial=8",
    "lightning_module.diffusion_module.model.gemnet.emb_size_trip=8",
    "lightning_module.diffusion_module.model.gemnet.emb_size_bil_trip=8",
    "lightning_module.diffusion_module.model.gemnet.emb_size_rbf=4",
    "lightning_module.diffusion_module.model.gemnet.emb_size_cbf=4",
    "lightning_module.diffusion_module.model.gemnet.max_neighbors=20",
]


def property_embedding(name: str, conditional_module: str) -> dict:
    hidden = "${lightning_module.diffusion_module.model.hidden_dim}"
    return {
        "_target_": "mattergen.property_embeddings.PropertyEmbedding",
        "name": name,
        "unconditional_embedding_module": {
            "_target_": "mattergen.property_embeddings.EmbeddingVector",
            "hidden_dim": hidden,
        },
        "conditional_embedding_module": {"_target_": conditional_module, "hidden_dim": hidden},
        "scaler": {"_target_": "torch.nn.Identity"},
    }


def model_config(steps: int, chemical_system: bool) -> dict:
    embeddings = {}
    if chemical_system:
        embeddings["chemical_system"] = property_embedding(
            "chemical_system", "mattergen.property_embeddings.ChemicalSystemMultiHotEmbedding"
        )
    corruption = "mattergen.common.diffusion.corruption."
    d3pm = "mattergen.diffusion.d3pm.d3pm."
    return {
        "lightning_module": {
            "_target_": "mattergen.diffusion.lightning_module.DiffusionLightningModule",
            "optimizer_partial": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
            "diffusion_module": {
                "_target_": "mattergen.diffusion.diffusion_module.DiffusionModule",
                "loss_fn": {
                    "_target_": "mattergen.common.loss.MaterialsLoss",
                    "reduce": "sum",
                    "include_pos": True,
                    "include_cell": True,
                    "include_atomic_numbers": True,
                    "d3pm_hybrid_lambda": 0.01,
                    "weights": {"cell": 1.0, "pos": 0.1, "atomic_numbers": 1.0},
                },
                "pre_corruption_fn": {
                    "_target_": "mattergen.property_embeddings.SetEmbeddingType",
                    "p_unconditional": 0.2,
                    "dropout_fields_iid": False,
                },
                "corruption": {
                    "_target_": "mattergen.diffusion.corruption.multi_corruption.MultiCorruption",
                    "sdes": {
                        "pos": {
                            "_target_": corruption + "NumAtomsVarianceAdjustedWrappedVESDE",
                            "wrapping_boundary": 1.0,
                            "sigma_max": 5.0,
                            "limit_info_key": "num_atoms",
                        },
                        "cell": {
                            "_target_": corruption + "LatticeVPSDE.from_vpsde_config",
                            "vpsde_config": {
                                "beta_min": 0.1,
                                "beta_max": 20,
                                "limit_density": 0.05,
                                "limit_var_scaling_constant": 0.25,
                            },
                        },
                    },
                    "discrete_corruptions": {
                        "atomic_numbers": {
                            "_target_": "mattergen.diffusion.corruption.d3pm_corruption.D3PMCorruption",
                            "offset": 1,
                            "d3pm": {
                                "_target_": d3pm + "MaskDiffusion",
                                "dim": 101,
                                "schedule": {
                                    "_target_": d3pm + "create_discrete_diffusion_schedule",
                                    "kind": "standard",
                                    "num_steps": steps,
                                },
                            },
                        }
                    },
                },
                "model": {
                    "_target_": "mattergen.denoiser.GemNetTDenoiser",
                    "hidden_dim": 512,
                    "denoise_atom_types": True,
                    "atom_type_diffusion": "mask",
                    "property_embeddings_adapt": {},
                    "property_embeddings": embeddings,
                    "gemnet": {
                        "_target_": "mattergen.common.gemnet.gemnet.GemNetT",
                        "num_targets": 1,
                        # time encoding plus one embedding per conditioned property
                        "latent_dim": f"${{eval:'${{..hidden_dim}} * {1 + len(embeddings)}'}}",
                        "atom_embedding": {
                            "_target_": "mattergen.common.gemnet.layers.embedding_block.AtomEmbedding",
                            "emb_size": "${...hidden_dim}",
                            "with_mask_type": True,
                        },
                        "emb_size_atom": "${..hidden_dim}",
                        "emb_size_edge": "${..hidden_dim}",
                        "num_radial": 128,
                        "emb_size_trip": 64,
                        "emb_size_bil_trip": 64,
                        "emb_size_rbf": 16,
                        "emb_size_cbf": 16,
                        "max_neighbors": 50,
                        "max_cell_images_per_dim": 5,
                        "cutoff": 7.0,
                        "num_blocks": 4,
                        "regress_stress": True,
                        "otf_graph": True,
                    },
                },
            },
        }
    }


def build(out_dir: Path, steps: int, chemical_system: bool, full_size: bool) -> None:
    import hydra
    import mattergen.common.gemnet.gemnet as gemnet
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        OmegaConf.save(OmegaConf.create(model_config(steps, chemical_system)), Path(tmp) / "model.yaml")
        # GemNetT reads scale factors at construction; the wheel lacks the file (all factors 1.0).
        (Path(tmp) / "common" / "gemnet").mkdir(parents=True)
        (Path(tmp) / "common" / "gemnet" / "gemnet-dT.json").write_text("{}")
        gemnet.MODELS_PROJECT_ROOT = Path(tmp)
        with hydra.initialize_config_dir(config_dir=tmp, version_base="1.1"):
            config = hydra.compose(config_name="model", overrides=[] if full_size else TINY_OVERRIDES)
        module = instantiate(config.lightning_module)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, out_dir / "config.yaml", resolve=True)
    torch.save({"state_dict": module.state_dict()}, out_dir / "checkpoints" / "last.ckpt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=1000, help="atom-type diffusion (D3PM) steps")
    parser.add_argument("--chemical-system", action="store_true", help="add the chemical_system embedding")
    parser.add_argument("--full-size", action="store_true", help="MatterGen's published size (46.8M params)")
    args = parser.parse_args()
    build(args.out_dir, args.steps, args.chemical_system, args.full_size)


if __name__ == "__main__":
    main()
