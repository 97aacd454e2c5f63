"""A real model behind the worker: scikit-learn's handwritten-digits classifier.

Trained at ``load()`` from the digits set that ships inside scikit-learn (1,797 8x8 images),
so it runs anywhere, on CPU, with no download. ``predict`` serves a whole batch with one
``predict_proba`` call, the way a GPU model serves one forward pass per batch.

Input, read through ``Request.read_input()`` (an ``s3://`` object, or ``https://`` with
``--allow-https-input``), is JSON:

- ``{"pixels": [64 numbers from 0 to 16]}``: an 8x8 image, row by row; or
- ``{"sample": N}``: image N of the bundled set (handy for smoke tests).

Result: ``{"digit": 7, "probability": 0.98, "probabilities": [10 numbers]}``. Bad input fails
only its own request, permanently (``BAD_INPUT``); an unreadable input keeps the error
``read_input()`` raised (permanent when the object is missing, retryable when S3 is busy).

    orchestrator worker --handler examples.digits:DigitsModel --batch-size 32 --max-wait 0.05
"""

from __future__ import annotations

from typing import Any

from orchestrator.worker import InferenceError, PermanentError, Request

PIXELS = 64
MAX_PIXEL = 16.0
HELD_OUT = 297
"""The last images of the set are not trained on (the example's test split)."""


class DigitsModel:
    def __init__(self) -> None:
        self._classifier: Any = None
        self._images: Any = None

    def load(self) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.datasets import load_digits
        from sklearn.svm import SVC

        digits = load_digits()
        self._images = digits.data
        train = len(digits.data) - HELD_OUT
        # An RBF support-vector machine, calibrated so predict_proba means something: about
        # 95 % right on the held-out images, trained in a couple of seconds on one core.
        classifier = CalibratedClassifierCV(SVC(gamma=0.1, C=10.0), ensemble=False)
        classifier.fit(digits.data[:train] / MAX_PIXEL, digits.target[:train])
        self._classifier = classifier

    def predict(self, requests: list[Request]) -> list[Any]:
        import numpy as np

        features: list[Any] = [self._features(request) for request in requests]
        rows = [i for i, f in enumerate(features) if not isinstance(f, BaseException)]
        results: list[Any] = list(features)  # errors stay in their request's place
        if rows:
            batch = np.stack([features[i] for i in rows]) / MAX_PIXEL
            probabilities = self._classifier.predict_proba(batch)  # one call for the batch
            for i, p in zip(rows, probabilities, strict=True):
                digit = int(np.argmax(p))
                results[i] = {
                    "digit": int(self._classifier.classes_[digit]),
                    "probability": round(float(p[digit]), 4),
                    "probabilities": [round(float(x), 4) for x in p],
                }
        return results

    def _features(self, request: Request) -> Any:
        import numpy as np

        try:
            document = request.read_json()
        except InferenceError as exc:
            return exc
        if not isinstance(document, dict):
            return PermanentError("input must be a JSON object", "BAD_INPUT")
        if "sample" in document:
            index = document["sample"]
            if (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < len(self._images)
            ):
                return PermanentError(f"sample must be 0-{len(self._images) - 1}", "BAD_INPUT")
            return self._images[index]
        pixels = document.get("pixels")
        if (
            not isinstance(pixels, list)
            or len(pixels) != PIXELS
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pixels)
            or not all(0 <= v <= MAX_PIXEL for v in pixels)
        ):
            return PermanentError(f"pixels must be {PIXELS} numbers from 0 to 16", "BAD_INPUT")
        return np.asarray(pixels, dtype=float)
