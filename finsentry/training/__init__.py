"""The training side of finsentry: one home for what the SageMaker jobs and the data scientist run.

- ``jobs``: the training and evaluation jobs (``train_job``, ``evaluate_job``, ``build_detector``).
- ``validation_set``: the training window and the labelled validation period.
- ``batch_inference`` and ``model_server``: Batch Transform and the ``serve`` HTTP server.
- ``sagemaker_env``: SageMaker's container conventions (channels, hyperparameters, failure files).

The entry points in ``sagemaker/`` are thin wrappers over these modules.
"""
