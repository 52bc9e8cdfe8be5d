"""Command line helpers around the workflow: check a config, prefetch its models, print its summary
or its status."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from crystal_campaign import metrics
from crystal_campaign.config import read_config_or_exit
from crystal_campaign.io import JobError
from crystal_campaign.prefetch import prefetch_campaign
from crystal_campaign.status import status_lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crystal-campaign", description=__doc__)
    parser.add_argument(
        "command",
        choices=["check", "prefetch", "summary", "status"],
        help="check a config, download its models and references (on a machine with internet), "
        "print its summary, or say which batches are done, failed and left per stage",
    )
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args(argv)
    config = read_config_or_exit(args.configfile)
    if args.command == "check":
        print(f"{args.configfile}: ok ({len(config['generators'])} generators)")
        return
    if args.command == "prefetch":
        try:
            fetched = prefetch_campaign(config)
        except JobError as error:
            raise SystemExit(f"prefetch failed: {error}") from None
        print("\n".join(fetched) if fetched else "nothing to download: every model and reference is local")
        failed = [line for line in fetched if "FAILED" in line]
        if failed:
            raise SystemExit(f"{len(failed)} item(s) could not be fetched; run prefetch again to retry them")
        return
    if args.command == "status":
        print("\n".join(status_lines(config)))
        return
    print("\n".join(summary_lines(config["campaign"], args.configfile)))


def summary_lines(campaign: str, configfile: str) -> list[str]:
    """The headline table of a finished campaign, then where its outputs are."""
    results = Path("results") / campaign
    summary_path = results / "metrics" / "summary.csv"
    if not summary_path.exists():
        raise SystemExit(f"no summary yet at {summary_path}: run the campaign first")
    summary = pd.read_csv(summary_path)
    candidates = results / "candidates" / "index.csv"
    n_candidates = len(pd.read_csv(candidates)) if candidates.exists() else 0
    stamp = summary.iloc[-1]
    return [
        f"\nCampaign {campaign!r} (rates are of evaluated structures, S.U.N. columns are counts)",
        f"reference: {stamp['reference_size']}",
        f"relaxer: {stamp['relaxer']}\n",
        *metrics.headline_table(summary),
        "",
        f"summary      {summary_path} (every column; .md, .json with definitions, units and settings)",
        f"structures   {results / 'metrics' / 'structures.parquet'} (one row per requested structure)",
        f"candidates   {candidates} ({n_candidates} metastable S.U.N.; CIFs in {candidates.parent / 'cif'})",
        f"plots        {results / 'plots'}/",
        f"report       make report CONFIG={configfile} (one self-contained HTML file)",
        f"status       crystal-campaign status --configfile {configfile}",
    ]


if __name__ == "__main__":
    main()
