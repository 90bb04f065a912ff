"""A stream subscriber: print a queue's messages as they are posted (server-sent events). A
cut connection is resumed from the last message received; with ``--state FILE`` a restart
resumes there too (the file keeps that message's id). SIGINT or SIGTERM stop it.

    export QUEUEY_URL=http://127.0.0.1:5000/v1/queuey QUEUEY_KEY=<key>
    .venv/bin/python examples/subscriber.py news --state news.last
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from types import FrameType

from queuey.client import Client


class Stopped(Exception):
    """A stop signal arrived (raised out of the wait for the next message)."""


def stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queue")
    parser.add_argument("--state", type=Path, help="a file keeping the last message id")
    args = parser.parse_args()
    state: Path | None = args.state
    last = state.read_text().strip() or None if state and state.exists() else None
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    seen = 0
    with Client(os.environ["QUEUEY_URL"], os.environ.get("QUEUEY_KEY")) as queuey:
        try:
            # Broadcast: every subscriber gets every message, each partition in time order.
            with queuey.stream(args.queue, mode="broadcast", last_event_id=last) as stream:
                print("ready", flush=True)
                for message in stream:
                    seen += 1
                    if state is not None:
                        state.write_text(message.message_id)
                    print(f"{message.ref}: {message.body}", flush=True)
        except Stopped as signalled:
            print(f"{signalled}: stopping", flush=True)
    print(f"stopped after {seen} messages", flush=True)


if __name__ == "__main__":
    main()
