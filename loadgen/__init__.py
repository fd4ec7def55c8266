"""Load generator and send-to-fire latency benchmark for Cloacina computation graphs."""

__version__ = "0.1.0"
