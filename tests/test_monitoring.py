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


def test_every_metric_is_alarmed_or_says_why_not():
    from finsentry.monitoring import SERVICE_ALARMS, UNALARMED

    alarmed = {Metric(a.metric) for a in ALARMS + SERVICE_ALARMS if a.namespace == METRIC_NAMESPACE}
    assert not alarmed & set(UNALARMED), "alarmed metrics listed as unalarmed"
    assert set(Metric) == alarmed | set(UNALARMED), f"no decision for {set(Metric) - alarmed - set(UNALARMED)}"
    for metric in (Metric.LABELS_UNRESOLVED, Metric.RISK_WRITE_FAILED, Metric.INDEX_WRITE_FAILED):
        assert metric in alarmed


def test_share_alarms_name_a_catalog_metric_and_a_minimum():
    from finsentry.monitoring import SERVICE_ALARMS

    shares = [a for a in ALARMS + SERVICE_ALARMS if a.share_of is not None]
    assert [a.name for a in shares] == ["labels-unresolved"]
    for spec in shares:
        assert spec.share_of in set(Metric) and spec.min_count > 0 and 0 < spec.threshold < 100
