"""Pydantic request and response bodies of the HTTP service (the only pydantic in embrec).

Raw ids travel as JSON numbers or strings (``RawId``); the app converts them
to the model's id type with ``IdIndex.coerce``. Every error, whatever its
cause, has the one body :class:`ErrorBody`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from embrec.serving.limits import MAX_ID_LENGTH

__all__ = ["AnswerId", "ErrorBody", "FoldInRequest", "Health", "ModelInfo", "Pair",
           "PredictRequest", "PredictResponse", "Prediction", "RawId", "Recommendations",
           "ScoredItem", "SimilarItem", "SimilarItems"]

RawId = StrictInt | Annotated[str, Field(max_length=MAX_ID_LENGTH)]
"""A raw user or item id as it appears in the training data (text: up to 256 characters).

Integers are not bounded in the schema (validators compare big integers as floats);
one out of the int64 range is simply an unknown id. ``true`` or ``1.0`` is not the id 1."""

AnswerId = StrictInt | str
"""An id in a response: any id the model was trained on (queries reach the long ones)."""

def _number_only(value: Any) -> Any:
    """Refuse ``true`` and ``"5"`` where a JSON number belongs (pydantic's lax mode takes them)."""
    if isinstance(value, bool | str):
        raise ValueError(f"expected a JSON number, got {type(value).__name__}")
    return value


FiniteRating = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_number_only)]
"""A rating: a finite JSON number (the app also checks it lies on the model's scale).

``true`` is not the rating 1 and ``"5"`` is not 5 (each a 422)."""
FeatureValue = (StrictInt | Annotated[float, Field(allow_inf_nan=False), BeforeValidator(
    _number_only)] | Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None)
"""A raw feature value: a finite number or text (checked against the column's kind), or null."""
Count = Annotated[int, BeforeValidator(_number_only)]
"""A JSON integer (``13.0`` too, as JSON Schema has it), never ``true`` or ``"13"``."""


class _Body(BaseModel):
    """Request bodies reject unknown fields, so a typo is a 422, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """The body of every error response.

    Attributes:
        error: the exception class name, e.g. ``"UnknownIdError"``.
        detail: the message, with a ``hint:`` line saying how to fix it.
    """

    error: str = Field(examples=["UnknownIdError"])
    detail: str = Field(examples=["unknown user 99999\n  hint: ..."])


class Health(BaseModel):
    """Liveness answer: the service is up and has a model loaded."""

    status: Literal["ok"] = "ok"
    model: str


class ModelInfo(BaseModel):
    """What model is served and what it was trained on."""

    model: str = Field(description="model name, e.g. 'biased-mf'")
    n_users: int
    n_items: int
    data: str | None = Field(None, description="training data source")
    fingerprint: str | None = Field(None, description="fingerprint of the training data")
    metrics: dict[str, Any] = Field(default_factory=dict, description="recorded metrics")
    config: dict[str, Any] = Field(default_factory=dict, description="model hyperparameters")
    scores: Literal["rating", "ranking"] = Field(
        "rating", description="what scores mean: a predicted rating, or a ranking score that "
        "is not a rating (then POST /predict is refused)")


class ScoredItem(BaseModel):
    """One recommended item and its predicted rating."""

    item: AnswerId
    score: float | None
    title: str | None = None


class Recommendations(BaseModel):
    """Top-n items for a known user (``user`` set) or a folded-in new user (``user`` null)."""

    user: AnswerId | None = None
    items: list[ScoredItem]


class SimilarItem(BaseModel):
    """One neighbour of an item and its similarity."""

    item: AnswerId
    similarity: float | None
    title: str | None = None


class SimilarItems(BaseModel):
    """The items most similar to ``item``, the item itself excluded."""

    item: AnswerId
    items: list[SimilarItem]


class Pair(_Body):
    """One (user, item) pair to score."""

    user: RawId
    item: RawId


class PredictRequest(_Body):
    """A batch of pairs, scored in one vectorised call."""

    pairs: list[Pair] = Field(examples=[[{"user": 196, "item": 242}]])
    on_unknown: Literal["error", "nan", "mean"] = Field(
        "error", description="unknown ids: 404 ('error'), null ('nan') or the mean rating"
    )


class Prediction(BaseModel):
    """The predicted rating of one pair (null for an unknown id under ``on_unknown='nan'``)."""

    user: AnswerId
    item: AnswerId
    rating: float | None


class PredictResponse(BaseModel):
    """Predictions, in the order of the request's pairs."""

    predictions: list[Prediction]


class FoldInRequest(_Body):
    """A new user's ratings (folded in) or side features (the cold start): one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["ratings"]}, {"required": ["features"]}]})

    ratings: dict[Annotated[str, Field(max_length=MAX_ID_LENGTH)], FiniteRating] = Field(
        default_factory=dict, min_length=1, examples=[{"50": 5.0, "181": 4.5}],
        description="raw item id -> rating (JSON object keys are strings)",
    )
    features: dict[Annotated[str, Field(max_length=MAX_ID_LENGTH)], FeatureValue] = Field(
        default_factory=dict, min_length=1, examples=[{"age": 30, "gender": "F"}],
        description="instead of ratings, for a model trained with user features "
        "(bayesian-fm): column -> raw value (numbers for numeric columns, text for "
        "categories; a column left out or null counts as missing)",
    )
    n: Count = Field(10, ge=1, description="number of items to return")
    exclude_seen: StrictBool = True
    on_unknown: Literal["error", "ignore"] = Field(
        "error", description="unknown items in 'ratings': 404 ('error') or skip them"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FoldInRequest:
        if bool(self.ratings) == bool(self.features):
            raise ValueError("send 'ratings' (item id -> rating) or 'features' "
                             "(column -> value), one of the two")
        return self
