"""The three gaps of moto 5.2's Step Functions interpreter this state machine runs into, filled.

Everything else (the interpreter: Pass/Choice/Parallel/Fail, Retry/Catch, JSONPath, intrinsic
functions; the Glue, SNS and aws-sdk integrations) is moto's own. The gaps, found by reading
``moto/stepfunctions/parser`` (5.2.5) and by running the definition:

1. ``.sync`` on Glue fails with ``States.Runtime: 'NoneType' object has no attribute
   'interrupt_all'``: ``StateTaskServiceCallback._eval_integration_pattern`` releases a
   callback endpoint that only exists for services that also support ``.waitForTaskToken``,
   which moto's Glue integration does not declare. Fix: declare it (moto's own Glue poller,
   ``get_job_run`` until a terminal state, then runs unchanged).
2. SageMaker and Athena are "unsupported optimised integrations": moto forwards a plain call to
   its backend but rejects ``.sync`` (``RuntimeError: Unsupported sync callback procedure``).
   Fix: the ``.sync`` contract of AWS for these services, against moto's backends: call the
   ``Create*``/``Start*`` API, then poll its ``Describe*``/``Get*`` API until a terminal status;
   the task's result is the describe response; a ``Failed``/``Stopped`` job (``FAILED``/
   ``CANCELLED`` query) raises ``States.TaskFailed`` with the describe response as the cause;
   a client error is ``SageMaker.AmazonSageMakerException`` / ``Athena.AmazonAthenaException``.
3. The aws-sdk integration returns S3 ``GetObject``'s ``Body`` as a stream object, where AWS
   returns the object's text (so ``States.StringToJson($.Body)`` works). Fix: read the stream.

``patched_interpreter`` swaps these classes into moto's task factory for the duration of a
test. The ASL is never altered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
    StateTaskServiceGlue,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

_SYNC_AND_TOKEN = {ResourceCondition.Sync, ResourceCondition.WaitForTaskToken}


class GlueSyncFixed(StateTaskServiceGlue):
    """Gap 1: moto's Glue integration with a callback endpoint, so its ``.sync`` completes."""

    def __init__(self) -> None:
        StateTaskServiceCallback.__init__(self, supported_integration_patterns=_SYNC_AND_TOKEN)


@dataclass(frozen=True)
class SyncPoll:
    """How AWS waits for one ``.sync`` action: the describe call, its id and its status."""

    describe: str  # boto3 method name
    id_param: str  # request parameter naming the job, passed to ``describe``
    id_from: Callable[[dict, dict], str]  # (request, create response) -> id
    status: Callable[[dict], str]  # describe response -> status
    success: frozenset[str]
    failure: frozenset[str]


def _req(key: str) -> Callable[[dict, dict], str]:
    return lambda request, _response: request[key]


_SAGEMAKER_SYNC = {
    "create_training_job": SyncPoll("describe_training_job", "TrainingJobName", _req("TrainingJobName"),
                                    lambda d: d["TrainingJobStatus"], frozenset({"Completed"}),
                                    frozenset({"Failed", "Stopped"})),
    "create_processing_job": SyncPoll("describe_processing_job", "ProcessingJobName", _req("ProcessingJobName"),
                                      lambda d: d["ProcessingJobStatus"], frozenset({"Completed"}),
                                      frozenset({"Failed", "Stopped"})),
    "create_transform_job": SyncPoll("describe_transform_job", "TransformJobName", _req("TransformJobName"),
                                     lambda d: d["TransformJobStatus"], frozenset({"Completed"}),
                                     frozenset({"Failed", "Stopped"})),
}  # fmt: skip
_ATHENA_SYNC = {
    "start_query_execution": SyncPoll("get_query_execution", "QueryExecutionId",
                                      lambda _req, resp: resp["QueryExecutionId"],
                                      lambda d: d["QueryExecution"]["Status"]["State"], frozenset({"SUCCEEDED"}),
                                      frozenset({"FAILED", "CANCELLED"})),
}  # fmt: skip


class ForwardedSyncService(StateTaskServiceCallback):
    """Gap 2: an optimised integration forwarded to moto's backend, with AWS's ``.sync`` polling."""

    polls: dict[str, SyncPoll] = {}
    error_prefix = ""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=_SYNC_AND_TOKEN)

    def _validate_service_integration_is_supported(self) -> None:
        if self.resource.condition == ResourceCondition.Sync and self._get_boto_service_action() not in self.polls:
            raise ValueError(f"no .sync poll defined for {self.resource.resource_arn}")

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return boto_client_for(service=self._get_boto_service_name(), region=resource_runtime_part.region,
                               state_credentials=state_credentials)  # fmt: skip

    def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                           state_credentials: Any) -> None:  # fmt: skip
        client = self._client(resource_runtime_part, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(response)

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            name = f"{self.error_prefix}.Amazon{self.error_prefix}Exception"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(name),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    error=name, cause=ex.response["Error"]["Message"], resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type())),
            )  # fmt: skip
        return super()._from_error(env=env, ex=ex)

    def _build_sync_resolver(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                             state_credentials: Any) -> Callable[[], Any]:  # fmt: skip
        created: dict = env.stack.pop()
        poll = self.polls[self._get_boto_service_action()]
        job_id = poll.id_from(normalised_parameters, created)
        client = self._client(resource_runtime_part, state_credentials)

        def resolve() -> dict | None:
            described = getattr(client, poll.describe)(**{poll.id_param: job_id})
            described.pop("ResponseMetadata", None)
            status = poll.status(described)
            if status in poll.success:
                return described
            if status in poll.failure:
                raise FailureEventException(FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                        resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                        error=StatesErrorNameType.StatesTaskFailed.to_name(), cause=to_json_str(described))),
                ))  # fmt: skip
            return None

        return resolve


class SageMakerSync(ForwardedSyncService):
    polls = _SAGEMAKER_SYNC
    error_prefix = "SageMaker"


class AthenaSync(ForwardedSyncService):
    polls = _ATHENA_SYNC
    error_prefix = "Athena"


class AwsSdkTextBody(StateTaskServiceAwsSdk):
    """Gap 3: streamed response members (S3 GetObject's Body) become text, as on AWS."""

    def _normalise_response(self, response: Any, boto_service_name: str | None = None,
                            service_action_name: str | None = None) -> None:  # fmt: skip
        if isinstance(response, dict):
            for key, value in list(response.items()):
                if hasattr(value, "read"):
                    response[key] = value.read().decode("utf-8")


_REPLACEMENTS: dict[str, type] = {
    "glue": GlueSyncFixed,
    "sagemaker": SageMakerSync,
    "athena": AthenaSync,
    "aws-sdk": AwsSdkTextBody,
}


@contextlib.contextmanager
def patched_interpreter() -> Iterator[None]:
    """moto's task factory with the three gaps filled; restored on exit."""
    original = state_task_factory.state_task_service_for

    def service_for(service_name: str) -> Any:
        replacement = _REPLACEMENTS.get(service_name)
        return replacement() if replacement else original(service_name=service_name)

    state_task_factory.state_task_service_for = service_for
    try:
        yield
    finally:
        state_task_factory.state_task_service_for = original
