"""Reload verification against targets that answer 2xx but did not really reload.

The real Prometheus and Alertmanager cases are in test_integration.py.
"""

import logging

import pytest

from syncjob.errors import TargetRejected, TargetUnreachable
from syncjob.settings import resolve
from syncjob.target import Target
from tests.fake_target import FakeTarget


def target_for(fake: FakeTarget, tmp_path, **settings: str) -> Target:
    return Target(
        resolve(
            {
                "endpoint": "http://127.0.0.1:1",
                "cluster_id": "c",
                "config_type": "prometheus",
                "config_path": str(tmp_path / "prometheus.yml"),
                "reload_url": fake.reload_url,
                "ready_timeout": "1s",
                **settings,
            },
            env={},
        )
    )


def test_a_fresh_successful_reload_is_accepted(tmp_path):
    with FakeTarget() as fake:
        target_for(fake, tmp_path).reload()
        assert fake.hits == ["GET /-/ready", "POST /-/reload", "GET /metrics"]


def test_a_2xx_with_a_failed_reload_is_a_rejection(tmp_path):
    with (
        FakeTarget(metrics="failed") as fake,
        pytest.raises(TargetRejected, match="reports it failed"),
    ):
        target_for(fake, tmp_path).reload()


def test_a_2xx_with_a_stale_reload_is_a_rejection(tmp_path):
    with FakeTarget(metrics="stale") as fake, pytest.raises(TargetRejected, match="did not take"):
        target_for(fake, tmp_path).reload()


def test_a_target_without_reload_metrics_falls_back_to_the_status_code(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with FakeTarget(metrics=None) as fake:
        target_for(fake, tmp_path).reload()
    assert "accepted by status code only" in caplog.text


def test_a_non_2xx_reload_carries_the_targets_words(tmp_path):
    body = b"failed to reload config: couldn't load configuration (--config.file=x)"
    with FakeTarget(reload_status=500, reload_body=body) as fake:
        with pytest.raises(TargetRejected, match="HTTP 500: failed to reload config: couldn't"):
            target_for(fake, tmp_path).reload()


def test_a_target_starting_up_is_waited_for_then_given_up_on(tmp_path):
    with FakeTarget(ready_status=503) as fake:
        with pytest.raises(TargetUnreachable, match=r"not ready after 1s .*answered 503"):
            target_for(fake, tmp_path).reload()
        assert fake.reloads == []  # never reloaded a target that was not ready
        assert fake.hits.count("GET /-/ready") > 1


def test_the_metrics_url_can_be_overridden(tmp_path):
    with FakeTarget() as fake, FakeTarget(metrics="failed") as elsewhere:
        with pytest.raises(TargetRejected):
            target_for(fake, tmp_path, metrics_url=elsewhere.url + "/metrics").reload()
