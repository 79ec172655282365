"""`rci topics create|describe`: the five contract topics on any cluster (a team's own Kafka included).

Creation goes through `rci.streams.kafka.ensure_topics`, the one way the project creates topics
(`rci services up`, the demo and the tests use it too); the shape comes from the settings:
RCI_TOPIC_PARTITIONS, RCI_TOPIC_REPLICATION_FACTOR, RCI_TOPIC_RETENTION_MS, and the DLQ's larger
`max.message.bytes`. Existing topics are reported, never altered.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from rci.cli.context import settings_from_env

app = typer.Typer(help="The contract topics (video.published, rci.scores, the DLQ, rci.shadow) on the configured cluster.",
                  no_args_is_help=True)  # fmt: skip

# Shown by `describe` even when inherited from the broker: what decides whether the service works.
KEY_CONFIGS = ("cleanup.policy", "max.message.bytes", "min.insync.replicas", "retention.bytes", "retention.ms")


def _fail(what: str, exc: Exception) -> typer.Exit:
    typer.secho(f"{what}: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command("create")
def create(
    partitions: int | None = typer.Option(None, "--partitions", min=1, help="Partitions per topic [default: RCI_TOPIC_PARTITIONS]."),
    replication_factor: int | None = typer.Option(
        None, "--replication-factor", min=-1,
        help="Replicas per partition; -1: the cluster's default.replication.factor [default: RCI_TOPIC_REPLICATION_FACTOR].",
    ),
    retention_ms: int | None = typer.Option(
        None, "--retention-ms", min=-1, help="retention.ms of the new topics; -1: forever [default: RCI_TOPIC_RETENTION_MS, else the cluster's]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be created; create nothing."),
) -> None:
    """Create the five topics that are missing; report the ones that exist (and how their shape differs).

    Idempotent: run it again and every topic is reported as existing. Exits 1 when the cluster cannot be reached or refuses.
    """
    settings = settings_from_env()
    from rci.core.errors import RCIError
    from rci.streams.kafka import ensure_topics, plan_topics

    update = {"topic_replication_factor": replication_factor, "topic_retention_ms": retention_ms}
    settings = settings.model_copy(update={k: v for k, v in update.items() if v is not None})
    if settings.topic_replication_factor == 0:
        raise typer.BadParameter("must be -1 or at least 1", param_hint="--replication-factor")
    console = Console()
    try:
        plans = plan_topics(settings, partitions)
        results = {p.topic: "would create" if p.action == "create" else "exists" for p in plans}
        if not dry_run:
            results = ensure_topics(settings, partitions)
    except RCIError as exc:
        raise _fail(f"topics on {settings.kafka_bootstrap}", exc) from exc
    table = Table(title=f"topics on {settings.kafka_bootstrap}" + (" (dry run: nothing created)" if dry_run else ""))
    for column in ("topic", "result", "partitions", "replication", "config at creation"):
        table.add_column(column)
    for plan in plans:
        created = plan.action == "create"
        shape = (str(plan.partitions), "cluster default" if plan.replication_factor < 0 else str(plan.replication_factor))
        if not created:  # what the cluster has
            shape = (str(plan.existing_partitions), str(plan.existing_replication_factor))
        config = ", ".join(f"{k}={v}" for k, v in plan.config.items()) if created else ""
        table.add_row(plan.topic, results[plan.topic], *shape, config)
    console.print(table)
    for plan in plans:
        if plan.action == "exists" and plan.mismatches:
            console.print(f"[yellow]{plan.topic} exists with {'; '.join(plan.mismatches)}: left as it is "
                          "(partitions can only be added, with the cluster's own tools)[/]")  # fmt: skip


@app.command("describe")
def describe(
    as_json: bool = typer.Option(False, "--json", help="One JSON object: topic -> partitions, replication_factor, config."),
    all_configs: bool = typer.Option(False, "--all", help="Every topic config, not only the key ones and those set on the topic."),
) -> None:
    """Partitions, replication factor and configs of each of the five topics (missing ones are named). Exits 1 if one is missing."""
    settings = settings_from_env()
    from rci.core.errors import RCIError
    from rci.streams.kafka import describe_topics

    try:
        described = describe_topics(settings)
    except RCIError as exc:
        raise _fail(f"topics on {settings.kafka_bootstrap}", exc) from exc
    shown = {
        topic: None if d is None else {
            "partitions": d.partitions,
            "replication_factor": d.replication_factor,
            "config": {k: v for k, v in d.config.items() if all_configs or k in KEY_CONFIGS or k in d.overrides},
            "set_on_topic": list(d.overrides),
        }
        for topic, d in described.items()
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        table = Table(title=f"topics on {settings.kafka_bootstrap}")
        for column in ("topic", "partitions", "replication", "config (* set on the topic)"):
            table.add_column(column)
        for topic, d in shown.items():
            if d is None:
                table.add_row(topic, "[red]missing[/]", "", "")
                continue
            config = "\n".join(f"{k}={v}{' *' if k in d['set_on_topic'] else ''}" for k, v in d["config"].items())
            table.add_row(topic, str(d["partitions"]), str(d["replication_factor"]), config)
        Console().print(table)
    if any(d is None for d in described.values()):
        typer.secho("missing topics: create them with `rci topics create`", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
