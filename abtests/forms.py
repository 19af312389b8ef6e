"""The dashboard's "New test" form (/ab-tests/): the page's inputs, the API's rules.

The form holds what was typed (so the page shows it again) and checks nothing itself: ``clean`` turns the
inputs into the API's create body and validates it with the API's ``CreateInput`` serializer, and the view
then calls the same service as the API, whose ``InvalidInput`` goes back on the form with ``add_service_errors``.
One definition of the rules, so the page refuses exactly what ``POST /api/v1/ab-tests/`` refuses, with the
same reasons, by field.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.http import QueryDict

from abtests.api import CreateInput
from abtests.models import ABTest

VARIANT_ROWS = 4
VARIANT_COLUMNS = ("name", "weight", "offer", "send_time")
SHOWN_BESIDE = ("campaign_id", "test_name", "variants", "sample_size_target", "confidence_level")  # templates/abtests/index.html


class ABTestCreateForm(forms.Form):
    campaign_id = forms.CharField(required=False)
    test_name = forms.CharField(required=False)
    hypothesis = forms.CharField(required=False)
    sample_size_target = forms.CharField(required=False)
    confidence_level = forms.CharField(required=False)
    primary_metric = forms.CharField(required=False)
    multiple_testing = forms.CharField(required=False)
    sequential = forms.BooleanField(required=False)
    # Not inputs: where the variant rows' errors go (the rows are variant_<column>_<i> inputs).
    variants = forms.CharField(required=False)

    BLANK = {"variant_name_0": "A", "variant_weight_0": "0.5", "variant_name_1": "B", "variant_weight_1": "0.5",
             "confidence_level": "0.95", "primary_metric": ABTest.Metric.CONVERSION_RATE}

    def __init__(self, data=None, **kwargs) -> None:
        super().__init__(data, initial=None if data is not None else dict(self.BLANK), **kwargs)
        self.create_kwargs: dict[str, Any] = {}

    def values(self) -> dict:
        """What the page shows in its inputs: what was posted, or the blank form's defaults."""
        return cast(QueryDict, self.data).dict() if self.is_bound else dict(self.initial)

    def variant_rows(self) -> list[dict]:
        values = self.values()
        return [{"i": i, **{c: values.get(f"variant_{c}_{i}", "") for c in VARIANT_COLUMNS}} for i in range(VARIANT_ROWS)]

    def api_body(self) -> dict:
        """The inputs as the API's create body (a blank input is left out, as a client would leave it out)."""
        data = cast(QueryDict, self.data)  # a bound form's data: the POST
        body: dict[str, Any] = {"guardrail_metrics": data.getlist("guardrail_metrics"),
                                "secondary_metrics": data.getlist("secondary_metrics"),
                                "sequential": data.get("sequential") == "on"}
        for name in ("campaign_id", "test_name", "hypothesis", "sample_size_target", "confidence_level",
                     "primary_metric", "multiple_testing"):
            raw = (data.get(name) or "").strip()
            if raw:
                body[name] = raw
        variants = []
        for i in range(VARIANT_ROWS):
            name = (data.get(f"variant_name_{i}") or "").strip()
            if name:
                variants.append({"name": name, "weight": (data.get(f"variant_weight_{i}") or "").strip(),
                                 "offer_id": data.get(f"variant_offer_{i}") or None,
                                 "send_time": (data.get(f"variant_send_time_{i}") or "").strip() or None})
        if variants:
            body["variants"] = variants
        return body

    def clean(self) -> dict:
        serializer = CreateInput(data=self.api_body())
        if serializer.is_valid():
            self.create_kwargs = serializer.create_kwargs()
        else:
            self.add_service_errors(serializer.errors)
        return self.cleaned_data

    def add_service_errors(self, fields: dict) -> None:
        """Field errors from the serializer or the service (``InvalidInput.fields``) onto the form's fields."""
        for name, reasons in fields.items():
            target = name if name in self.fields else None
            for reason in _flat(name, reasons):
                self.add_error(target, reason if target else f"{name}: {reason}")

    def field_errors(self) -> dict[str, list[str]]:
        return {name: [str(e) for e in errors] for name, errors in self.errors.items()}

    def other_errors(self) -> list[str]:
        """Errors of inputs the page has no error slot beside (shown above the form), e.g. a metric's."""
        return [f"{name.replace('_', ' ')}: {e}" if name != "__all__" else str(e)
                for name, errors in self.errors.items() if name not in SHOWN_BESIDE for e in errors]


def _flat(name: str, reasons: Any) -> list[str]:
    """A field's reasons as lines: a variant's own errors read "variant 2 weight: ..."."""
    rows = _rows(reasons)
    if rows is not None:  # the variants' errors, by row (DRF gives them as {index: errors} or a list)
        return [f"variant {i + 1} {line}" for i, row in rows for line in _flat(name, row)]
    if isinstance(reasons, dict):  # one variant's errors
        return [f"{key}: {line}" for key, value in reasons.items() for line in _flat(key, value)]
    if isinstance(reasons, list):
        return [str(r) for r in reasons]
    return [str(reasons)]


def _rows(reasons: Any) -> list[tuple[int, dict]] | None:
    if isinstance(reasons, dict) and reasons and all(str(k).isdigit() for k in reasons):
        return sorted((int(k), v) for k, v in reasons.items())
    if isinstance(reasons, list) and any(isinstance(r, dict) for r in reasons):
        return [(i, r) for i, r in enumerate(reasons) if r]
    return None
