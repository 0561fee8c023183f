"""Static checks of the training state machine's definition and of its loader."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsentry.evaluation import ModelReport, select_model
from finsentry.layout import PREFIXES
from finsentry.pipeline_definition import (
    CANDIDATES,
    PLACEHOLDERS,
    SUPERVISED,
    DefinitionError,
    job_names,
    load_definition,
    placeholders_in,
    read_definition,
)
from tests.stepfunctions.conftest import substitutions

FAILURE_NOTIFICATION = "NotifyFailure"
# the only errors handled otherwise than by notifying: no SSM parameter yet = no champion; the
# supervised job's failure goes through a Choice that skips the candidate on "not enough verdicts"
EXPECTED_ERRORS = {("ReadChampion", ("Ssm.ParameterNotFoundException",)): "ListWithoutChampion",
                   ("TrainSupervised", ("States.ALL",)): "SupervisedTrainingOutcome"}
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture(scope="module")
def asl() -> dict:
    return json.loads(load_definition(substitutions()))


def walk(states: dict, branch: str | None = None) -> Iterator[tuple[str, dict, str | None, dict]]:
    """(name, state, enclosing Parallel's name or None, the States map holding it), branches included."""
    for name, state in states.items():
        yield name, state, branch, states
        for sub in state.get("Branches", []):
            yield from walk(sub["States"], name)


def test_raw_file_is_json_and_uses_exactly_the_contract_placeholders() -> None:
    raw = read_definition()
    json.loads(raw)  # placeholders sit inside strings: the raw file is JSON too
    assert placeholders_in(raw) == set(PLACEHOLDERS)


def test_every_task_retries_and_every_catch_reaches_the_failure_notification(asl: dict) -> None:
    top = asl["States"]
    tasks = 0
    for name, state, parallel, scope in walk(top):
        if state["Type"] not in ("Task", "Parallel"):
            continue
        catches = state.get("Catch", [])
        assert catches, f"{name} has no Catch"
        assert any(c["ErrorEquals"] == ["States.ALL"] for c in catches), f"{name} does not catch States.ALL"
        if state["Type"] == "Task":
            tasks += 1
            assert state.get("Retry"), f"Task {name} has no Retry"
        for retrier in state.get("Retry", []):
            if "States.ALL" in retrier["ErrorEquals"]:
                assert retrier["ErrorEquals"] == ["States.ALL"] and retrier is state["Retry"][-1], name
        for catch in catches:
            target = catch["Next"]
            if (name, tuple(catch["ErrorEquals"])) in EXPECTED_ERRORS:
                assert EXPECTED_ERRORS[name, tuple(catch["ErrorEquals"])] == target
                continue
            if name == FAILURE_NOTIFICATION:
                assert top[target]["Type"] == "Fail"
            elif parallel is None:
                assert target == FAILURE_NOTIFICATION, f"{name} catches into {target}"
            else:  # a Catch cannot leave its branch: it fails the branch, the Parallel's Catch notifies
                assert scope[target]["Type"] == "Fail", f"{name} catches into {target}"
                assert {c["Next"] for c in top[parallel]["Catch"]} == {FAILURE_NOTIFICATION}
            assert catch.get("ResultPath") in ("$.error", "$.notify_error"), name
    assert tasks == 18  # 12 top-level Tasks + one training Task per candidate (5) + the supervised label check
    assert top[FAILURE_NOTIFICATION]["Resource"] == "arn:aws:states:::sns:publish"
    assert top[top[FAILURE_NOTIFICATION]["Next"]]["Type"] == "Fail"


def test_every_state_is_reachable_and_every_transition_exists(asl: dict) -> None:
    def targets(state: dict) -> set[str]:
        out = {state["Next"]} if "Next" in state else set()
        out |= {c["Next"] for c in state.get("Catch", [])}
        out |= {c["Next"] for c in state.get("Choices", [])}
        return out | ({state["Default"]} if "Default" in state else set())

    def check(machine: dict) -> None:
        states = machine["States"]
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            assert name in states, f"transition to unknown state {name}"
            seen.add(name)
            todo += targets(states[name])
            for branch in states[name].get("Branches", []):
                check(branch)
        assert seen == set(states), f"unreachable: {set(states) - seen}"

    check(asl)


def test_job_names_are_unique_per_execution_and_valid(asl: dict) -> None:
    states = dict((n, s) for n, s, _, _ in walk(asl["States"]))
    assert states["ApplyDefaults"]["Parameters"]["run"]["id.$"] == "States.Hash($$.Execution.Name, 'MD5')"
    jobs = states["BuildConfig"]["Parameters"]["run"]["jobs"]
    # job_names (what on-call uses to find a run's jobs) builds the names exactly as the ASL does
    digest = job_names("x")["lof"].rsplit("-", 1)[1]
    assert {k.removesuffix(".$"): v for k, v in jobs.items()} == {
        kind: f"States.Format('{name.removesuffix(digest)}{{}}', $.run.id)" for kind, name in job_names("x").items()
    }
    name_keys = ("TrainingJobName", "ProcessingJobName", "TransformJobName", "ModelName")
    named = [(n, k) for n, s in states.items() for k in name_keys if k in s.get("Parameters", {}) or f"{k}.$" in
             s.get("Parameters", {})]  # fmt: skip
    assert len(named) == 9  # 5 trainings, evaluation, model, transform (ModelName), transform job
    for state, key in named:
        assert states[state]["Parameters"][f"{key}.$"].startswith("$.run.jobs."), (state, key)
    longest = "a_" * 40  # execution names: up to 80 characters, underscores allowed
    for name in job_names(longest).values():
        assert SAGEMAKER_NAME.match(name) and len(name) <= 63
    assert job_names("run-1") != job_names("run-2")


def test_training_branches_are_the_four_candidates_and_the_supervised_one(asl: dict) -> None:
    branches = asl["States"]["TrainCandidates"]["Branches"]
    detectors = [b["States"][b["StartAt"]]["Parameters"]["HyperParameters"]["detector"] for b in branches[:-1]]
    assert tuple(detectors) == CANDIDATES
    selector = asl["States"]["TrainCandidates"]["ResultSelector"]
    assert selector == {f"{d}.$": f"$[{i}]" for i, d in enumerate((*CANDIDATES, SUPERVISED))}
    supervised = branches[-1]["States"]
    job = supervised["TrainSupervised"]["Parameters"]
    assert job["HyperParameters"]["detector"] == SUPERVISED
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["labels"].endswith(f"/{PREFIXES.feedback_labels}")
    assert supervised["FindLabels"]["Parameters"]["Prefix"] == PREFIXES.feedback_labels


def test_the_supervised_branch_skips_only_on_missing_labels_and_fails_otherwise(asl: dict) -> None:
    """Two ways to end the branch without failing the run (no verdicts at all, fewer than the
    minimum: the job's own message); every other failure ends in the branch's Fail state."""
    states = asl["States"]["TrainCandidates"]["Branches"][-1]["States"]
    outcome = states["SupervisedTrainingOutcome"]
    assert states[outcome["Default"]]["Type"] == "Fail"
    (choice,) = outcome["Choices"]
    pattern = choice["And"][-1]["StringMatches"]
    assert pattern.startswith("*") and pattern.endswith("*")
    # the text matched is the one the training job raises below the minimum
    # (tests/sagemaker/test_feedback.py checks it reaches the job's failure file)
    source = (Path(__file__).parents[2] / "finsentry" / "training" / "jobs.py").read_text()
    assert pattern.strip("*") in source
    for skip in ("NoLabelsYet", choice["Next"]):
        assert states[skip]["Type"] == "Pass" and states[skip]["End"] and states[skip]["Parameters"]["skipped"]


def test_data_paths_follow_the_layout(asl: dict) -> None:
    text = json.dumps(asl)
    bucket = substitutions()["DataBucket"]
    paths = re.findall(rf"s3://{re.escape(bucket)}/([^'\"{{]*)", text)
    assert paths
    prefixes = [p for p in vars(PREFIXES).values()]
    for path in paths:
        assert any(path.startswith(p) for p in prefixes), path
    assert f"{PREFIXES.curated}" in paths and f"{PREFIXES.scored}" in paths


def test_the_decision_reads_only_what_select_model_writes(asl: dict) -> None:
    """The Choice and the reports read selection.<key>: every key must exist in Selection.to_dict,
    and the table must be ranked best first (the promotion reads its threshold from row 0)."""
    used = set(re.findall(r"\$\.evaluation\.document\.selection\.([a-z_]+)", json.dumps(asl)))
    reports = [ModelReport(name=n, threshold=0.5 + i / 10, alerts=1, precision=1.0, recall=r)
               for i, (n, r) in enumerate(zip(CANDIDATES, (0.3, 0.9, 0.6, 0.7), strict=True))]  # fmt: skip
    for champion in (None, ModelReport(name="lof", threshold=0.2, alerts=1, precision=1.0, recall=0.95)):
        selection = select_model(reports, champion).to_dict()
        assert used <= set(selection), used - set(selection)
        assert selection["table"][0]["name"] == selection["best"] == "lof"
        assert selection["table"][0]["threshold"] == pytest.approx(0.6)


def test_load_definition_names_every_problem() -> None:
    subs = substitutions()
    with pytest.raises(DefinitionError) as missing:
        load_definition({k: v for k, v in subs.items() if k not in ("KmsKeyArn", "DataBucket")})
    assert "unsubstituted" in str(missing.value) and "'DataBucket', 'KmsKeyArn'" in str(missing.value)
    with pytest.raises(DefinitionError, match=r"unknown placeholder\(s\) \['Bucket'\]"):
        load_definition({**subs, "Bucket": "x"})
    with pytest.raises(DefinitionError, match=r"\['AthenaWorkgroup'\] must be non-empty strings"):
        load_definition({**subs, "AthenaWorkgroup": ""})


def test_load_definition_escapes_values(tmp_path: Path) -> None:
    path = tmp_path / "machine.asl.json"
    path.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${Thing}", "End": True}}}))
    out = json.loads(load_definition({"Thing": 'say "hi"\\'}, path))
    assert out["States"]["A"]["Result"] == 'say "hi"\\'
    assert "${" not in load_definition(substitutions())


def test_cfn_lint_accepts_the_definition(asl: dict) -> None:
    """cfn-lint's ASL schema (rule E3601) catches what moto's lenient parser lets through:
    unknown fields, misspelt comparison operators, wrongly typed retry fields."""
    from cfnlint.api import ManualArgs, lint

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Machine": {"Type": "AWS::StepFunctions::StateMachine",
                                  "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/sfn", "Definition": asl}}},
    }  # fmt: skip
    assert [str(m) for m in lint(json.dumps(template), config=ManualArgs(regions=["eu-west-1"]))] == []
    broken = json.loads(json.dumps(template).replace('"IsBoolean": true', '"IsBool": true', 1))
    assert any("E3601" in str(m) for m in lint(json.dumps(broken), config=ManualArgs(regions=["eu-west-1"])))


def test_iam_actions_cover_every_task_resource() -> None:
    from finsentry.pipeline_definition import TASK_ACTIONS, iam_actions, task_resources

    assert task_resources(read_definition()) == set(TASK_ACTIONS)  # no stale entry, none missing
    actions = iam_actions()
    assert {"sagemaker:CreateTrainingJob", "iam:PassRole", "ssm:PutParameter", "sns:Publish"} <= set(actions)
    unknown = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask",
                                                           "End": True}}})  # fmt: skip
    with pytest.raises(DefinitionError, match="ecs:runTask"):
        iam_actions(unknown)
