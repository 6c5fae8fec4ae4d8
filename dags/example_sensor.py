"""Example: a sensor waits for a file that another task delivers, then the data is used.

    deliver          writes the day's orders, slowly, then a `_SUCCESS` marker next to them
    wait_for_orders  a sensor: `test -f .../_SUCCESS || exit 75`, every 2 s, in reschedule
                     mode (between pokes it holds no slot, so it never blocks `deliver`)
    count_orders     runs once the sensor said yes; its output is the number of orders

`deliver` and `wait_for_orders` start together; in real life the file would come from
outside (an upload, another system) and only the sensor would be in the DAG. Exit code 75
means "not yet"; any other non-zero code fails the sensor. Everything runs on the local
`orchestrator/busybox:latest` image (`orchestrator images bootstrap` makes it), in a few
seconds: `orchestrator dags test example_sensor`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator import DAG, ContainerTask

DATA_VOLUME = "orchestrator-example-sensor-data"
DAY_DIR = "/data/{{ ds_nodash }}"

with DAG(
    "example_sensor",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "image": "orchestrator/busybox:latest",
        "pull_policy": "never",  # a local image: never pulled
        "mounts": [f"{DATA_VOLUME}:/data"],
        "memory": "64m",
    },
    tags=("example",),
    description="A reschedule-mode sensor waits for a delivered file, then the file is used.",
) as dag:
    deliver = ContainerTask(
        task_id="deliver",
        command=[
            "sh",
            "-c",
            f"mkdir -p {DAY_DIR} && sleep 5"
            f" && printf 'id,amount\\n1,9.50\\n2,12.00\\n3,4.25\\n' > {DAY_DIR}/orders.csv"
            f" && touch {DAY_DIR}/_SUCCESS && echo delivered",
        ],
    )
    wait_for_orders = ContainerTask(
        task_id="wait_for_orders",
        command=[
            "sh",
            "-c",
            f'echo "poke $ORCH_POKE_NUMBER: looking for {DAY_DIR}/_SUCCESS";'
            f" test -f {DAY_DIR}/_SUCCESS || exit 75",
        ],
        sensor=True,
        mode="reschedule",
        poke_interval=timedelta(seconds=2),
        timeout=timedelta(minutes=10),
    )
    count_orders = ContainerTask(
        task_id="count_orders",
        command=[
            "sh",
            "-c",
            f'n=$(($(wc -l < {DAY_DIR}/orders.csv) - 1)); echo "$n orders";'
            ' echo "$n" > "$ORCH_OUTPUT_PATH"',
        ],
    )

    wait_for_orders >> count_orders
