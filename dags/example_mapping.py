"""Example: dynamic task mapping, one container per city from a list produced upstream.

    cities    busybox   writes the cities to visit as a JSON list (its output)
    weather   busybox   mapped over that list: one container per city, each reading its
                        city from `{{ mapped.item }}` and writing one reading as its output
    summary   python    receives every reading as one list (`outputs.weather`, in map-index
                        order) and prints a table

How many `weather` containers run is decided at run time by what `cities` wrote: trigger with
`--conf '{"cities": ["oslo", "lima"]}'` for two. Only local images are used
(`orchestrator images bootstrap` makes them on an offline host).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator import DAG, ContainerTask, Param

BUSYBOX = "orchestrator/busybox:latest"
PYTHON = "orchestrator/python-base:bookworm"

SUMMARY = """
import json, os
readings = json.loads(os.environ["READINGS"])
print(f"weather on {os.environ['DAY']} for {len(readings)} cities")
for reading in readings:
    print(f"  {reading['city']:<12} {reading['temp_c']:>4} C")
"""

with DAG(
    "example_mapping",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "pull_policy": "never",  # local images only
        "retries": 1,
        "retry_delay": timedelta(seconds=2),
        "memory": "64m",
    },
    params={
        "cities": Param(
            ["amsterdam", "paris", "tokyo"], type="array", description="cities to report on"
        )
    },
    tags=("example",),
    description="Fan out over a list made at run time: one weather container per city.",
) as dag:
    cities = ContainerTask(
        task_id="cities",
        image=BUSYBOX,
        environment={"CITIES": "{{ params.cities | tojson }}"},
        command=["sh", "-c", 'printf "%s" "$CITIES" > "$ORCH_OUTPUT_PATH"'],
    )
    weather = ContainerTask.partial(
        task_id="weather",
        image=BUSYBOX,
        environment={"CITY": "{{ mapped.item }}"},
        command=[
            "sh",
            "-c",
            'echo "instance $ORCH_MAP_INDEX: measuring $CITY"; '
            'temp=$(( $(printf "%s" "$CITY" | wc -c) * 3 )); '
            'printf \'{"city": "%s", "temp_c": %d}\' "$CITY" "$temp" > "$ORCH_OUTPUT_PATH"',
        ],
    ).expand(item=cities.output)
    summary = ContainerTask(
        task_id="summary",
        image=PYTHON,
        environment={"READINGS": "{{ outputs.weather | tojson }}", "DAY": "{{ ds }}"},
        command=["python3", "-c", SUMMARY],
    )

    weather >> summary
