"""A work-queue consumer: claim messages, process each, acknowledge it. SIGINT or SIGTERM
stop it cleanly: the message in hand is finished and acknowledged, the rest of the claim is
released for other workers, and no new claim is made.

    export QUEUEY_URL=http://127.0.0.1:5000/v1/queuey QUEUEY_KEY=<key>
    .venv/bin/python examples/worker.py jobs
"""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType

from queuey.client import ClaimedMessage, ClaimExpired, Client


def process(message: ClaimedMessage) -> None:
    """The work itself: here, print the message."""
    print(f"{message.ref} (delivery {message.deliveries}): {message.body}", flush=True)


class Worker:
    def __init__(self, queuey: Client, queue: str, batch: int, wait: int) -> None:
        self.queuey = queuey
        self.queue = queue
        self.batch = batch
        self.wait = wait
        self.running = True
        self.done = 0

    def stop(self, signum: int, frame: FrameType | None) -> None:
        print(f"{signal.Signals(signum).name}: stopping", flush=True)
        self.running = False

    def run(self) -> None:
        while self.running:
            # A long poll: the answer comes when a message is available, or after `wait` s.
            claimed = self.queuey.claim(self.queue, limit=self.batch, wait=self.wait)
            for index, message in enumerate(claimed):
                if not self.running:
                    self.queuey.release(self.queue, claimed[index:])
                    break
                process(message)
                try:
                    self.queuey.ack(self.queue, [message])
                    self.done += 1
                except ClaimExpired:  # the lease ended first: it will be delivered again
                    print(f"{message.ref}: lease ended before the ack", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queue")
    parser.add_argument("--batch", type=int, default=10, help="messages per claim (10)")
    parser.add_argument("--wait", type=int, default=5, help="long-poll seconds (5)")
    args = parser.parse_args()
    with Client(os.environ["QUEUEY_URL"], os.environ.get("QUEUEY_KEY")) as queuey:
        worker = Worker(queuey, args.queue, args.batch, args.wait)
        signal.signal(signal.SIGINT, worker.stop)
        signal.signal(signal.SIGTERM, worker.stop)
        print("ready", flush=True)
        worker.run()
    print(f"stopped after {worker.done} messages", flush=True)


if __name__ == "__main__":
    main()
