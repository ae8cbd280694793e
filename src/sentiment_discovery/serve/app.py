"""The web application: the live page and the JSON API over one :class:`InferenceService`.

Every error is a JSON object ``{"error": "one line"}``: 413 for a request over the
service's limits, 422 for one it cannot serve (wrong types, unknown fields, an empty text,
a unit the model lacks), 500 for a fault of the server, which then goes on serving.
"""

import asyncio
import contextlib
import importlib.resources
import json

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, visualize
from ..foundation.choices import LABELS
from ..foundation.errors import UserError
from .service import InferenceService, LimitExceeded

PAGE_FILE = "page.html"


class _Request(BaseModel):
    # Strict: "5" is not a unit and a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class ClassifyRequest(_Request):
    texts: list[str]
    trace: bool = Field(False, description="also the classifier's P(positive) after every byte, where it has one")


class FeaturizeRequest(_Request):
    texts: list[str]
    layer: int = -1
    pooling: str = "final"
    precision: str | None = None
    preprocess: bool = True


class UnitValuesRequest(_Request):
    text: str
    unit: int | None = None
    layer: int | None = None
    negate: bool | None = None


class GenerateRequest(_Request):
    prompt: str
    new_bytes: int = 200
    hold: float | None = Field(None, allow_inf_nan=False, description="the unit's value while writing; null: free")
    unit: int | None = None
    layer: int | None = None
    negate: bool | None = None
    temperature: float = Field(0.4, allow_inf_nan=False)
    seed: int | None = Field(0, ge=0, lt=2**63)


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({error.get('ctx', {}).get('error', 'cannot parse it')})"
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


class _BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before they are read whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = _error(413, f"the request body has {int(declared)} bytes; this server takes at most {self.max_bytes}")
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # An HTTPException passes through FastAPI's body reading unchanged.
                raise HTTPException(413, f"the request body is over {self.max_bytes} bytes, the most this server takes")
            return message

        await self.app(scope, counted, send)


async def _result(future):
    return await asyncio.wrap_future(future)


def create_app(service: InferenceService) -> FastAPI:
    """The application; closing it (the end of its lifespan) closes the service."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    # No /docs pages: they load their scripts from a CDN and the machine may be offline.
    app = FastAPI(
        title="sentiment-discovery", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.add_middleware(_BodyLimit, max_bytes=service.limits.body_bytes)
    app.state.service = service
    page = importlib.resources.files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")

    @app.exception_handler(LimitExceeded)
    async def too_large(request: Request, error: LimitExceeded):
        return _error(413, str(error))

    @app.exception_handler(UserError)
    async def unservable(request: Request, error: UserError):
        return _error(422, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        errors = error.errors()
        return _error(422, _validation_message(errors[0]) if errors else "invalid request",
                      detail=[{key: error[key] for key in ("loc", "msg", "type") if key in error} for error in errors])

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the router's 404 and 405
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception):
        return _error(500, f"internal error: {type(error).__name__}: {error}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    @app.get("/health")
    async def health():
        return {"status": "ok", "queued": service.queued()}

    @app.get("/info")
    async def info():
        scale = visualize.value_colours(np.linspace(-1, 1, 11))
        return {
            **service.info(),
            "version": __version__,
            "labels": list(LABELS),
            "colour_scale": ["#{:02x}{:02x}{:02x}".format(*colour) for colour in scale],
            "batching": vars(service.stats).copy(),
        }

    @app.post("/classify")
    async def classify(request: ClassifyRequest):
        predictions = service.classify(request.texts)
        traces = service.probability_traces(request.texts) if request.trace else None
        rows = await _result(predictions)
        classes = service.classifier.classes
        if classes is None:
            response = {"probabilities": [p for p, _ in rows], "labels": [LABELS[label] for _, label in rows]}
        else:  # -multiclass: P(predicted class), the class, and every class's probability
            response = {"probabilities": [row[0] for row in rows], "labels": [str(classes[row[1]]) for row in rows],
                        "classes": [str(c) for c in classes], "class_probabilities": [row[2] for row in rows]}
        if traces is not None:
            response["traces"] = await _result(traces)
        return response

    @app.post("/featurize")
    async def featurize(request: FeaturizeRequest):
        features = await _result(service.featurize(
            request.texts, layer=request.layer, pooling=request.pooling, precision=request.precision,
            preprocess=request.preprocess,
        ))
        return {"shape": list(features.shape), "features": features.tolist()}

    @app.post("/unit_values")
    async def unit_values(request: UnitValuesRequest):
        return await _result(service.unit_values(request.text, request.unit, request.layer, request.negate))

    @app.post("/generate")
    async def generate(request: GenerateRequest):
        events = service.generate(
            request.prompt, new_bytes=request.new_bytes, hold=request.hold, unit=request.unit, layer=request.layer,
            negate=request.negate, temperature=request.temperature, seed=request.seed,
        )

        async def lines():
            # Once streaming, the status is sent: a failure is the stream's last line.
            try:
                for future in events:
                    yield json.dumps(await _result(future)) + "\n"
            except Exception as error:
                yield json.dumps({"event": "error", "error": f"{type(error).__name__}: {error}"}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app
