"""OpenAPI fuzzing with schemathesis against the real server: no generated request may get a 5xx.

Bounded (a few dozen examples per operation) so it stays fast; the server runs on SQLite with a model live.
A 503 that is the documented degraded policy answer would be allowed; nothing else at 5xx is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scoring_fixtures import ladder_booster, make_settings, register_model, running_api

from ticketguard.kit.db import make_engine

EXAMPLES = 40


def _fuzz(operation: Any, base: str, failures: list[str], statuses: list[int]) -> None:
    strategy = operation.as_strategy()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        response = case.call(base_url=base, timeout=10)
        statuses.append(response.status_code)
        policy_answer = response.status_code == 503 and response.json().get("degraded") is True
        if response.status_code >= 500 and not policy_answer:
            failures.append(f"{operation.label}: {response.status_code} {response.text[:200]}")

    run()


@pytest.mark.xdist_group("api-fuzz")
def test_no_generated_request_gets_a_server_error(sqlite_url: str, tmp_path: Path) -> None:
    app_settings = make_settings(sqlite_url, tmp_path)
    engine = make_engine(sqlite_url)
    register_model(engine, app_settings.resolved_model_dir, "fuzz-1", ladder_booster(), promote=True)
    failures: list[str] = []
    checked: list[str] = []
    statuses: list[int] = []
    with running_api(app_settings) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            checked.append(operation.label)
            _fuzz(operation, base, failures, statuses)
    assert "POST /api/v1/ml/predict/fraud" in checked
    assert "POST /api/v1/ml/batch/predict" in checked
    assert failures == []
    assert len(statuses) >= 2 * EXAMPLES
    assert {200, 422} <= set(statuses)  # valid and invalid requests were both generated
