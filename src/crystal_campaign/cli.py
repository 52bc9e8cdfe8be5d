"""Command line helpers around the workflow: check a config, prefetch its models, print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from crystal_campaign.config import validate_config_or_exit
from crystal_campaign.io import JobError
from crystal_campaign.prefetch import prefetch_campaign


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crystal-campaign", description=__doc__)
    parser.add_argument(
        "command",
        choices=["check", "prefetch", "summary"],
        help="check a config, download its models and references (on a machine with internet), "
        "or print its summary",
    )
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args(argv)
    config = validate_config_or_exit(yaml.safe_load(Path(args.configfile).read_text()) or {})
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
    summary = Path("results") / config["campaign"] / "metrics" / "summary.md"
    if not summary.exists():
        raise SystemExit(f"no summary yet at {summary}: run the campaign first")
    print(f"\nCampaign {config['campaign']!r} ({summary}):\n")
    print(summary.read_text())


if __name__ == "__main__":
    main()
