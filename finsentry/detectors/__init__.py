"""Detectors behind one contract (``Detector``); ``make_detector(name)`` builds one by name.

Registered names: ``isolation_forest``, ``lof``, ``ensemble``, ``tails`` (tail probabilities, ECOD-like),
``lstm`` (``sequence.py``), ``supervised`` (gradient-boosted trees on analysts' verdicts). The registry
stays open: a new detector module registers itself with ``@register(name)`` and is imported here.
Artifacts (``save_model`` / ``load_model``) live in ``finsentry.detectors.artifact``.
"""

from finsentry.detectors.base import REGISTRY, Detector, make_detector, register
from finsentry.detectors.ensemble import EnsembleDetector
from finsentry.detectors.isolation_forest import IsolationForestDetector
from finsentry.detectors.lof import LofDetector
from finsentry.detectors.sequence import LstmSequenceDetector
from finsentry.detectors.supervised import SupervisedDetector
from finsentry.detectors.tails import TailProbabilityDetector

__all__ = [
    "REGISTRY",
    "Detector",
    "EnsembleDetector",
    "IsolationForestDetector",
    "LofDetector",
    "LstmSequenceDetector",
    "SupervisedDetector",
    "TailProbabilityDetector",
    "make_detector",
    "register",
]
