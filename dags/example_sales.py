"""Example: a daily sales pipeline, every step its own container image, entirely offline.

    generate   orchestrator/datagen    writes the day's raw orders (CSV shards) to a volume
    clean      orchestrator/transform  validates, normalises and de-duplicates them
    aggregate  orchestrator/transform  summarises the clean orders; the summary is its output
    report     orchestrator/report     prints the summary it receives through a template

The tasks share data through the named volume `orchestrator-example-data`, one directory per
day (`/data/<ds_nodash>/raw` and `/clean`), and pass the summary downstream as a task output
(`{{ outputs.aggregate }}`). Build the images first: `orchestrator images bootstrap` (offline
hosts only) and `orchestrator images build`. Trigger with `--conf '{"rows": 5000}'` for a
bigger day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator import DAG, ContainerTask, Param

DATA_VOLUME = "orchestrator-example-data"
DAY_DIR = "/data/{{ ds_nodash }}"

with DAG(
    "example_sales",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        "pull_policy": "never",  # the images are built locally (`orchestrator images build`)
        "memory": "256m",
        "execution_timeout": timedelta(minutes=5),
    },
    params={"rows": Param(500, type="integer", description="orders to generate for the day")},
    tags=("example",),
    description="Generate, clean and aggregate a day of synthetic sales orders, then report.",
) as dag:
    generate = ContainerTask(
        task_id="generate",
        image="orchestrator/datagen:latest",
        command=[
            "--date",
            "{{ ds }}",
            "--rows",
            "{{ params.rows }}",
            "--out",
            f"{DAY_DIR}/raw",
        ],
        mounts=[f"{DATA_VOLUME}:/data"],
    )
    clean = ContainerTask(
        task_id="clean",
        image="orchestrator/transform:latest",
        command=["clean", "--in", f"{DAY_DIR}/raw", "--out", f"{DAY_DIR}/clean"],
        mounts=[f"{DATA_VOLUME}:/data"],
    )
    aggregate = ContainerTask(
        task_id="aggregate",
        image="orchestrator/transform:latest",
        command=["aggregate", "--in", f"{DAY_DIR}/clean", "--date", "{{ ds }}", "--top", "3"],
        mounts=[f"{DATA_VOLUME}:/data:ro"],
    )
    report = ContainerTask(
        task_id="report",
        image="orchestrator/report:latest",
        command=["--title", "Sales report {{ ds }} (run {{ run_id }})", "--min-orders", "1"],
        environment={"SUMMARY": "{{ outputs.aggregate | tojson }}"},
        memory="128m",
    )

    generate >> clean >> aggregate >> report
