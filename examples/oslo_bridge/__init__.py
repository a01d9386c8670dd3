"""One broker, two frameworks: an unmodified oslo.messaging service and a steward service.

The story of ``docs/migrating.md``: a deployment whose *compute* service has moved to steward
while its *scheduler* is still an oslo.messaging service. Each calls the other on one RabbitMQ
and each hears the other's notifications:

- the oslo side (``oslo_scheduler.py``) calls compute's ``boot_instance``, ``get_instance``, and
  casts ``stop_instance``, through a nova-style ``rpcapi`` client;
- compute (``steward_compute.py``) calls the scheduler's ``select_host`` with the caller's request
  context, so one request id runs through both services;
- the scheduler's ``ValueError`` travels back through compute to the oslo caller as a
  ``ValueError``;
- compute's notifications (including one from its periodic task) reach oslo's notification
  listener, the scheduler's reach steward's.

Run it (oslo.messaging comes with steward's ``dev`` extra; RabbitMQ on 127.0.0.1 with guest)::

    python -m examples.oslo_bridge                     # amqp://guest:guest@127.0.0.1:5672/
    python -m examples.oslo_bridge --url amqp://user:pass@rabbit:5672/vhost

It prints each message that crossed, with the request id its receiver read, and exits 0. Its
topics carry a run id, and it deletes its queues at the end (``--keep`` leaves them).
"""

from __future__ import annotations

from examples.oslo_bridge.run import DEFAULT_URL, EXPECTED, main

__all__ = ["DEFAULT_URL", "EXPECTED", "main"]
