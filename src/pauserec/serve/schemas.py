"""Request and response models of the HTTP API (they are also its OpenAPI documentation)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

#: The most history entries one request may carry (only the ``split.max_history`` most recent are read).
MAX_REQUEST_HISTORY = 1000


class RecommendRequest(BaseModel):
    """A user's history, oldest first, as catalogue item ids **or** exact titles (not both)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"history": ["B00002N8DI"], "k": 10}]})

    history: list[StrictStr | StrictInt] = Field(
        [], max_length=MAX_REQUEST_HISTORY,
        description="Item ids, oldest first. Unknown ids are refused (422, naming them). Only the run's "
        "split.max_history most recent items are read, as in training. Empty (and no titles): cold start.",
    )
    titles: list[StrictStr] = Field(
        [], max_length=MAX_REQUEST_HISTORY,
        description="Alternatively, exact item titles (case-insensitive), oldest first; a title shared by several "
        "items means the most popular of them.",
    )
    k: StrictInt = Field(10, ge=1, description="How many items to return (at most the service's beam width).")
    pauses: StrictInt | None = Field(
        None, ge=0, description="Pause tokens at inference (pause arm only); default: the run's inference K.",
    )


class RecommendedItem(BaseModel):
    rank: int = Field(description="1 = best.")
    item_id: str
    title: str
    score: float = Field(description="The SID log-probability under the model; for a cold start, the item's number "
                         "of training interactions.")


class RecommendResponse(BaseModel):
    items: list[RecommendedItem]
    k: int
    pauses: int = Field(description="Pause tokens used (0 for a cold start or a non-pause arm).")
    cold_start: bool = Field(description="True when the history was empty: the answer is the most popular items "
                             "of the training data, not the model's.")
    history_used: list[str] = Field(description="The item ids the model read (after truncation), oldest first.")
    truncated: int = Field(description="How many of the oldest history items were dropped (split.max_history).")
    batch_size: int = Field(description="How many requests were decoded together with this one (0 = no decoding).")
    decode_ms: float = Field(description="Wall time of the decoder call that served this request.")
    latency_ms: float = Field(description="Wall time in the service, from the parsed request to the answer "
                              "(queueing included).")


class Item(BaseModel):
    item_id: str
    title: str
    interactions: int = Field(description="Training interactions (popularity).")


class ItemsResponse(BaseModel):
    query: str
    items: list[Item]


class Health(BaseModel):
    status: str
    model: dict[str, object]
    batching: dict[str, object]
    decoder: dict[str, object]
