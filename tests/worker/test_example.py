"""The runnable example: the digits classifier served by the real worker runtime."""

from __future__ import annotations

import json

from examples.digits import HELD_OUT, DigitsModel

from orchestrator.core.record import RequestStatus
from orchestrator.worker.runtime import Worker
from worker.conftest import RunningWorker, make_request, wait_until


def test_the_digits_model_classifies_held_out_images_in_batches(stack):
    from sklearn.datasets import load_digits

    digits = load_digits()
    first_held_out = len(digits.data) - HELD_OUT
    documents = []
    for n in range(first_held_out, first_held_out + 30):
        url = stack.put_input(f"inputs/{n}.json", {"pixels": [int(v) for v in digits.data[n]]})
        documents.append((make_request(f"digit-{n}", input_url=url), int(digits.target[n])))
    bad = make_request(
        "digit-bad", input_url=stack.put_input("inputs/bad.json", {"pixels": [1, 2]})
    )
    missing = make_request("digit-missing", input_url=f"s3://{stack.bucket}/inputs/none.json")
    sample = make_request("digit-sample", input_url=stack.put_input("inputs/s.json", {"sample": 0}))
    stack.forward([d for d, _ in documents] + [bad, missing, sample])

    model = DigitsModel()
    worker = Worker(
        stack.settings(batch_size=16, max_wait=1.0), model, stack.clients(), poll_seconds=1
    )
    with RunningWorker(worker) as handle:
        ids = [d["request_id"] for d, _ in documents] + [
            "digit-bad",
            "digit-missing",
            "digit-sample",
        ]
        wait_until(lambda: all(stack.record(i).status.is_final for i in ids), 60)
        assert handle.stop() == 0

    correct = 0
    for document, label in documents:
        record = stack.record(document["request_id"])
        assert record.status is RequestStatus.SUCCEEDED
        result = json.loads(record.result)
        assert len(result["probabilities"]) == 10
        correct += result["digit"] == label
    assert correct >= 27  # >= 90 % on images it was not trained on
    assert json.loads(stack.record("digit-sample").result)["digit"] == int(digits.target[0])
    assert (stack.record("digit-bad").status, stack.record("digit-bad").error_code) == (
        RequestStatus.FAILED,
        "BAD_INPUT",
    )
    assert stack.record("digit-missing").error_code == "INPUT_NOT_FOUND"
    assert worker.metrics.batches._value.get() < 33  # batched, not one call per request
