"""The tools above the pipeline: datasets and their ground truth, replay and record,
processor fleets, chaos runs and benchmarks, and their `clickstream` subcommands
(registered through the `clickstream.commands` entry point, see load.commands).

May import services (common, producer, processor, consumer, cli) and statestore;
never tests. Nothing below imports load.
"""
