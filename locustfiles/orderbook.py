"""Orderbook producers against a Cloacina accumulator.

    locust -f locustfiles/orderbook.py --host http://127.0.0.1:8080

Each user holds one persistent WebSocket connection to
``/v1/ws/accumulator/orderbook`` and sends synthetic quotes at ``--rate-per-user``
events per second; a probe measures send-to-fire latency and shows it as the
``FIRE send-to-fire (probe)`` row. The key comes from ``$TOKEN`` or ``--token``.
Run ``locust -f locustfiles/orderbook.py --help`` for the other options.
"""

from loadgen.locust_user import OrderbookUser

__all__ = ["OrderbookUser"]
