"""The project's Prefect deployments, served by one process (``python -m flows.deployments``).

``xvlm serve`` starts this beside the Prefect and MLflow servers; a user then runs, e.g.::

    prefect deployment run 'demo/demo' --watch

Outputs of served runs go under ``$XVLM_SERVE_HOME/runs/<deployment>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment


def deployments(home: Path) -> list[RunnerDeployment]:
    """Every deployment the local services offer, with parameters that run on this machine."""
    from flows.demo_flow import demo_flow
    from flows.ingest import ingest

    runs = home / "runs"
    return [
        demo_flow.to_deployment(
            "demo", parameters={"out": str(runs / "demo"), "seed": 0},
            description="The whole DAG on the embedded sample corpus (CPU, about a minute).",
            tags=["demo"]),
        ingest.to_deployment(
            "ingest-sample", parameters={"raw_root": str(runs / "demo" / "raw"), "out": str(runs / "lake")},
            description="Ingest the sample corpus written by a demo run into a separate lake.",
            tags=["demo"]),
    ]


def main() -> None:
    home = Path(os.environ.get("XVLM_SERVE_HOME", "serve-home")).resolve()
    serve(*deployments(home), pause_on_shutdown=False, print_starting_message=True)


if __name__ == "__main__":
    main()
