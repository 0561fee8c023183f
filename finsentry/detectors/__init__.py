"""Detectors behind one contract (``Detector``); ``make_detector(name)`` builds one by name."""

from finsentry.detectors import ensemble, isolation_forest, lof  # noqa: F401  (registration)
from finsentry.detectors.base import REGISTRY, Detector, make_detector, register

__all__ = ["REGISTRY", "Detector", "make_detector", "register"]
