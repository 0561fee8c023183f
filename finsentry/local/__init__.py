"""The embedded default: the whole pipeline on a laptop, AWS simulated in-process by moto."""
