"""Example: branching and tasks without a container.

    latest      LatestOnly: in scheduled runs of older days (catch-up) skip everything after it
    choose      a branch task: writes "weekday" or "weekend" to its output, by the run's date
    weekday     runs on Monday to Friday
    weekend     runs on Saturday and Sunday
    join        an EmptyTask after both paths: the branch skips one path, so the join gets
                `none_failed_min_one_success` (it runs when the chosen path succeeded)
    report      a container after the join

Run one day with `orchestrator dags test example_branching --date 2026-03-14` (a Saturday).
"""

from __future__ import annotations

from datetime import datetime

from orchestrator import DAG, ContainerTask, EmptyTask, LatestOnly

BUSYBOX = "orchestrator/busybox:latest"

with DAG(
    "example_branching",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"image": BUSYBOX, "pull_policy": "never"},
) as dag:
    latest = LatestOnly("latest")
    choose = ContainerTask(
        "choose",
        branch=True,
        command=[
            "sh",
            "-c",
            "echo '\"{{ 'weekend' if logical_date.isoweekday() >= 6 else 'weekday' }}\"'"
            ' > "$ORCH_OUTPUT_PATH"',
        ],
    )
    weekday = ContainerTask("weekday", command=["echo", "a working day: {{ ds }}"])
    weekend = ContainerTask("weekend", command=["echo", "a day off: {{ ds }}"])
    join = EmptyTask("join")
    report = ContainerTask("report", command=["echo", "{{ ds }} done"])

    latest >> choose >> [weekday, weekend] >> join >> report
