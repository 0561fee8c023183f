import pytest

from finsentry.layout import SCORER_ENV, model_parameter_name, resource_name
from finsentry.monitoring import ALARMS, METRIC_NAMESPACE, Metric, alarm


def test_alarm_names_are_unique_and_found():
    names = [a.name for a in ALARMS]
    assert len(names) == len(set(names))
    assert alarm("rules-only").metric == Metric.RULES_ONLY
    with pytest.raises(KeyError, match="known"):
        alarm("nope")


def test_own_metric_alarms_use_the_metric_catalog():
    own = [a for a in ALARMS if a.namespace == METRIC_NAMESPACE]
    assert own and all(a.metric in set(Metric) for a in own)


def test_names_are_per_environment():
    assert resource_name("prod", "profiles") == "finsentry-prod-profiles"
    assert model_parameter_name("dev") == "/finsentry/dev/model/current"
    assert len(set(vars(SCORER_ENV).values())) == len(vars(SCORER_ENV))
