"""Data sources: the PKDD'99 Czech bank dataset (both public forms) and the synthetic bank."""
