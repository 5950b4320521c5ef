"""The OpenAPI document is the contract: a property-based run (schemathesis, Hypothesis)
against the live daemon, every operation, valid and invalid inputs: no server error, every
status documented, every body matching its schema, invalid input rejected with a 4xx.

The event stream is left out (it never ends by itself; test_events covers it). Connection
names are drawn from a small fixed set so the fuzz cannot replace the pair's own
connection in the middle of the run."""

from __future__ import annotations

import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.harness import Live  # noqa: E402

EXAMPLES = int(os.environ.get("IKEV2D_FUZZ_EXAMPLES", "30"))
SKIP = {("GET", "/events")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _operations(live: Live) -> list[Any]:
    doc = live.client().request("GET", "/openapi.json")
    # 413 (body over api.max_body) and 408 are rejections too
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {
        "expected-statuses": ["400", "401", "403", "404", "405", "408", "409", "413", "415",
                              "422", "429"]}}})
    schema = schemathesis.openapi.from_dict(doc, config=config)
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) not in SKIP:
            ops.append(op)
    return ops


def test_document_lists_every_route(live: Live) -> None:
    from api.operations import OPERATIONS

    doc = live.client().request("GET", "/openapi.json")
    listed = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert listed == {(o.method, o.path) for o in OPERATIONS}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_contract_holds_under_fuzzing(live: Live, mode: GenerationMode) -> None:
    headers = {"Authorization": f"Bearer {live.token}"}
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])
    failures: list[str] = []
    calls = 0
    for op in _operations(live):
        label = f"{op.method.upper()} {op.path}"
        path_params = {"name": "fuzz"} if "{name}" in op.path else {}
        strategy = op.as_strategy(generation_mode=mode, path_parameters=path_params or None)

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: Any) -> None:
            nonlocal calls
            if case.query and isinstance(case.query.get("timeout"), int | float):
                case.query["timeout"] = min(case.query["timeout"], 0.2)  # keep the run short
            calls += 1
            try:
                case.call_and_validate(base_url=live.url, headers=headers, checks=checks,
                                       timeout=10)
            except Exception as exc:  # collect, report all at the end
                failures.append(f"{case.method} {case.path}: {exc}"[:2000])

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid: no parameters, no body
            assert mode == GenerationMode.NEGATIVE, label
    assert not failures, "\n\n".join(failures[:10])
    assert calls >= len(_operations(live))
    # the daemon still serves IKE after the run
    assert live.client().health()["status"] == "ok"
