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
import time
from types import FrameType

from queuey.client import ClaimedMessage, ClaimExpired, Client


class Worker:
    def __init__(self, queuey: Client, queue: str, batch: int, wait: int, work: float) -> None:
        self.queuey = queuey
        self.queue = queue
        self.batch = batch
        self.wait = wait
        self.work = work
        self.running = True
        self.done = 0

    def stop(self, signum: int, frame: FrameType | None) -> None:
        print(f"{signal.Signals(signum).name}: stopping", flush=True)
        self.running = False

    def process(self, message: ClaimedMessage) -> None:
        """The work itself: here, print the message and take ``work`` seconds."""
        print(f"{message.ref} (delivery {message.deliveries}): {message.body}", flush=True)
        time.sleep(self.work)

    def run(self) -> None:
        while self.running:
            # A long poll: the answer comes when a message is available, or after `wait` s.
            claimed = self.queuey.claim(self.queue, limit=self.batch, wait=self.wait)
            for index, message in enumerate(claimed):
                if not self.running:  # let other workers have the rest at once
                    self.queuey.release(self.queue, claimed[index:])
                    print(f"released {len(claimed) - index} messages", flush=True)
                    break
                self.process(message)
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
    parser.add_argument("--work", type=float, default=0, help="seconds per message (0)")
    args = parser.parse_args()
    with Client(os.environ["QUEUEY_URL"], os.environ.get("QUEUEY_KEY")) as queuey:
        worker = Worker(queuey, args.queue, args.batch, args.wait, args.work)
        signal.signal(signal.SIGINT, worker.stop)
        signal.signal(signal.SIGTERM, worker.stop)
        print("ready", flush=True)
        worker.run()
    print(f"stopped after {worker.done} messages", flush=True)


if __name__ == "__main__":
    main()
