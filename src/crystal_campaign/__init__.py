"""crystal-campaign: the library behind the generative crystal-discovery Snakemake workflow."""

__version__ = "0.1.0"
