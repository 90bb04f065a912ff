"""Post work to a queue: each argument as a message, or ``--count`` numbered ones.

export QUEUEY_URL=http://127.0.0.1:5000/v1/queuey QUEUEY_KEY=<key>
.venv/bin/python examples/producer.py jobs "resize photo 1" "resize photo 2"
.venv/bin/python examples/producer.py jobs --count 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os

from queuey.client import Client, QueueExists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queue")
    parser.add_argument("messages", nargs="*")
    parser.add_argument("--count", type=int, default=0, help="post this many numbered jobs")
    args = parser.parse_args()
    messages = args.messages + [f"job {n}" for n in range(1, args.count + 1)]

    with Client(os.environ["QUEUEY_URL"], os.environ.get("QUEUEY_KEY")) as queuey:
        # A queue created earlier with other settings is used as it is.
        with contextlib.suppress(QueueExists):
            queuey.create_queue(args.queue, claim_ttl=60, max_deliveries=5)
        for start in range(0, len(messages), 1000):  # at most 1000 messages per batch
            posted = queuey.post_batch(args.queue, messages[start : start + 1000])
            print(f"posted {len(posted)} messages, {posted[0].ref} to {posted[-1].ref}")


if __name__ == "__main__":
    main()
