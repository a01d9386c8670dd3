"""``python -m examples.oslo_bridge [--url URL] [--keep]``: run the bridge, print what crossed."""

from __future__ import annotations

import argparse
import asyncio
import logging

from examples.oslo_bridge.run import DEFAULT_URL, main


def cli() -> None:
    """Parse the command line and run the example."""
    parser = argparse.ArgumentParser(prog="python -m examples.oslo_bridge", description=__doc__)
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"the RabbitMQ to use (default {DEFAULT_URL})"
    )
    parser.add_argument("--keep", action="store_true", help="leave the run's queues behind")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # py-amqp (under oslo) warns of the broker's cancel of a consumer whose fanout queue oslo
    # deletes as it closes: harmless, and not what the example shows.
    logging.getLogger("amqp").setLevel(logging.ERROR)
    crossings = asyncio.run(main(arguments.url, echo=True, keep=arguments.keep))
    request_ids = {c.request_id for c in crossings if c.request_id is not None}
    print(f"{len(crossings)} crossings, {len(request_ids)} request ids; done.")


if __name__ == "__main__":
    cli()
