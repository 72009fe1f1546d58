"""The API's routes: windows, rollups, probes, metrics and the page.

Published records are answered as the bytes the emitter published, so a
response equals the record on the metrics topic; rollups and the window in
progress are merged from Redis per request (see statestore/rollups.py).
"""

from __future__ import annotations

import time
from importlib import resources

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api import query, schemas
from services.api.app import Readers, json_response
from services.common.window_record import iso_utc
from statestore import build_record
from statestore.rollups import Bucket

router = APIRouter()

ERRORS = {status: {"model": schemas.Error} for status in (400, 401, 404, 503)}
FROM = Query(None, alias="from", description="RFC 3339 or epoch seconds (inclusive)")
TO = Query(None, description="RFC 3339 or epoch seconds (exclusive); default now")
DAY_S = 86400


def _readers(request: Request) -> Readers:
    return request.app.state.readers


def _raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(
    "/v1/windows/latest",
    summary="The latest published window, its latest revision",
    responses={200: {"model": schemas.Window}, **ERRORS},
)
async def latest_window(request: Request) -> Response:
    record = await _readers(request).published.latest()
    if record is None:
        raise HTTPException(404, "no window has been published yet")
    return _raw_json(record)


@router.get(
    "/v1/windows/current",
    summary="The window in progress, merged live from Redis (partial)",
    responses={200: {"model": schemas.CurrentWindow}, **ERRORS},
)
async def current_window(request: Request) -> Response:
    rollups = _readers(request).rollups
    topology = await rollups.topology()
    if topology is None:
        raise HTTPException(404, "no processor has started on this topic yet")
    partitions, window_s = topology
    totals = await rollups.in_progress(partitions)
    if totals is None:
        raise HTTPException(404, "no window in progress")
    watermark = await rollups.watermark(partitions)
    body = msgspec.structs.asdict(
        build_record(totals, window_s, revision=0, final=False, published_at_s=time.time())
    )
    elapsed = min(max((watermark or totals.window_start) - totals.window_start, 0), window_s)
    body["partial"] = True
    body["progress"] = {
        "watermark": iso_utc(watermark) if watermark is not None else None,
        "elapsed_seconds": round(elapsed, 3),
        "fraction": round(elapsed / window_s, 4),
    }
    return json_response(body)


@router.get(
    "/v1/windows",
    summary="Published windows in [from, to), newest first, paginated",
    responses={200: {"model": schemas.WindowPage}, **ERRORS},
)
async def list_windows(
    request: Request,
    start: str | None = FROM,
    to: str | None = TO,
    limit: str | None = Query(None, description="windows per page (default 50)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> Response:
    config = request.app.state.config
    span = query.time_range(
        start, to, time.time(), int(config.api_max_range_days * DAY_S), query.DEFAULT_SPAN_S
    )
    page_size = query.parse_limit(limit, min(50, config.api_max_page), config.api_max_page)
    after = query.parse_cursor(cursor)
    newest = span.end - 1 if after is None else min(after, span.end - 1)
    published = _readers(request).published
    starts = await published.window_starts(newest, span.start, page_size + 1)
    records = [r for r in await published.records(starts[:page_size]) if r is not None]
    next_cursor = b'"%d"' % starts[page_size] if len(starts) > page_size else b"null"
    return _raw_json(
        b'{"windows":[' + b",".join(records) + b'],"next_cursor":' + next_cursor + b"}"
    )


@router.get(
    "/v1/windows/{window_start}",
    summary="One published window; ?revision=N for an older revision while it is kept",
    responses={200: {"model": schemas.Window}, **ERRORS},
)
async def one_window(
    request: Request,
    window_start: str,
    revision: str | None = Query(None, description="a revision number (default: the latest)"),
) -> Response:
    start = query.parse_instant(window_start, "window_start")
    wanted = query.parse_revision(revision)
    published = _readers(request).published
    record = await published.window(start, wanted)
    if record is not None:
        return _raw_json(record)
    if wanted is not None and await published.window(start) is not None:
        raise HTTPException(404, f"revision {wanted} of window {iso_utc(start)} is not kept")
    raise HTTPException(404, f"no published window starts at {iso_utc(start)}")


@router.get(
    "/v1/rollups",
    summary="Windows merged into buckets: counters summed, unique counts by HLL union",
    responses={200: {"model": schemas.Rollup}, **ERRORS},
)
async def rollups(
    request: Request,
    resolution: str = Query("1h", description="1h, 1d or <N>m (a multiple of the window)"),
    start: str | None = FROM,
    to: str | None = TO,
) -> Response:
    config = request.app.state.config
    reader = _readers(request).rollups
    topology = await reader.topology()
    size_s = query.parse_resolution(resolution, topology[1] if topology else None)
    span = query.time_range(
        start, to, time.time(), int(config.api_max_range_days * DAY_S), query.DEFAULT_SPAN_S
    )
    span = query.bucket_range(span, size_s, config.api_max_buckets)
    if topology is None:
        return json_response({"resolution_seconds": size_s, "buckets": []})
    buckets = await reader.buckets(span.start, span.end, size_s, topology[0])
    return _raw_json(
        b'{"resolution_seconds":%d,"buckets":[' % size_s
        + b",".join(_bucket_json(bucket, size_s) for bucket in buckets)
        + b"]}"
    )


def _bucket_json(bucket: Bucket, size_s: int) -> bytes:
    """A bucket as JSON; a final bucket never changes, so its rendering is kept on it."""
    if bucket.rendered is not None:
        return bucket.rendered
    body = msgspec.structs.asdict(
        build_record(bucket.totals, size_s, revision=0, final=bucket.final, published_at_s=0)
    )
    del body["revision"], body["published_at"]
    body["windows"] = bucket.windows
    body["top_pages_max_undercount"] = bucket.pages_undercount
    body["top_referrers_max_undercount"] = bucket.referrers_undercount
    rendered = msgspec.json.encode(body)
    if bucket.final:
        bucket.rendered = rendered
    return rendered


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    await _readers(request).redis.ping()  # unreachable: the 503 handler answers
    return json_response({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(str(resources.files("services.api").joinpath("static", "index.html")))
