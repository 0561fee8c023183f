"""The gap of moto 5.2's SageMaker that the registry commands run into, filled.

``UpdateModelPackage`` sets every field the request leaves out to nothing in moto: without
``CustomerMetadataProperties`` (e.g. only a new approval status) the metadata is gone, without
``ModelApprovalStatus`` the status is. AWS leaves them as they are (it adds or replaces the
metadata keys given and removes those in ``CustomerMetadataPropertiesToRemove``). The
registry keeps the detector, threshold and evaluation there, so an approval in moto would lose
them. ``registry_metadata_kept`` keeps them when the request has none; the guard test in
``tests/test_moto_sagemaker.py`` fails when moto does it itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from moto.sagemaker.models import SageMakerModelBackend


@contextlib.contextmanager
def registry_metadata_kept() -> Iterator[None]:
    original = SageMakerModelBackend.update_model_package

    def update(self, model_package_arn, model_approval_status, approval_description, customer_metadata_properties,
               customer_metadata_properties_to_remove, additional_inference_specifications_to_add):  # noqa: ANN001
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(name)
        if package is not None:
            customer_metadata_properties = {**(package.customer_metadata_properties or {}),
                                            **(customer_metadata_properties or {})}  # fmt: skip
            model_approval_status = model_approval_status or package.model_approval_status
            approval_description = approval_description or package.approval_description
        return original(self, model_package_arn, model_approval_status, approval_description,
                        customer_metadata_properties, customer_metadata_properties_to_remove or [],
                        additional_inference_specifications_to_add)  # fmt: skip

    SageMakerModelBackend.update_model_package = update
    try:
        yield
    finally:
        SageMakerModelBackend.update_model_package = original
