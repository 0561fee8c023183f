"""finsentry: anomaly detection for bank transactions. The core library: no AWS calls here."""

__version__ = "0.1.0"
