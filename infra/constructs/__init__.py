"""Reusable constructs of the finsentry CDK app."""
