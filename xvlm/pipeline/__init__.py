"""The pipeline layer: the DAG's stages as typed library functions, with their skip / resume rules.

``flows/`` wraps these in Prefect flows and tasks (one task, one call); nothing here imports Prefect.
- ``config``: ``RunConfig``, the one configuration tree of a pre-training run, and its presets;
- ``stages``: sample corpus, data-stage logging, training (in-process or torchrun);
- ``evaluation``: the evaluation stage's key, reuse rule and marker;
- ``retrieval_grounding`` / ``vl_tasks``: the downstream evaluations, one MLflow run each;
- ``figures``: the example PNGs those runs log.
"""
