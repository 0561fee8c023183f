"""The CDK app of finsentry: every AWS resource of one deployment (see ``infra/app.py``)."""
