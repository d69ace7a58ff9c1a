"""``from_schema`` of hypothesis-jsonschema, patched to run on current hypothesis and to build
each sub-schema's strategy once (the fuzz tests of OCPP frames and of REST bodies use it)."""

from __future__ import annotations

import inspect
from typing import Any

def _patch_hypothesis_jsonschema() -> None:
    """Two patches to hypothesis-jsonschema 0.23 (its last release), made when this module is imported.

    - Recent hypothesis (6.170 here) replaced ``cu.many(...).more()`` with an iterator used in a
      ``with`` block; hypothesis-jsonschema still calls ``more()``. A small adapter gives it
      the old interface on top of the new one.
    - It rebuilds (and re-canonicalises) the strategy of every sub-schema on every draw, which
      makes the 2.0.1 schemas cost up to a second per example; strategies are immutable, so
      they are cached by the canonical JSON of their schema.
    """
    import hypothesis.internal.conjecture.utils as cu
    import hypothesis_jsonschema._from_schema as hjs
    from hypothesis_jsonschema._encode import encode_canonical_json

    if getattr(hjs, "_csms_patched", False):
        return
    if not hasattr(cu.many, "more") and ".more()" in inspect.getsource(hjs):
        class LegacyMany:
            def __init__(self, data: Any, **kwargs: Any) -> None:
                self._many = cu.many(data, **kwargs)
                self._many.__enter__()
                self._elements = iter(self._many)

            def more(self) -> bool:
                if next(self._elements, StopIteration) is StopIteration:
                    self._many.__exit__(None, None, None)
                    return False
                return True

            def reject(self, why: str | None = None) -> None:
                self._many.reject(why)

        class Utils:
            many = LegacyMany

        hjs.cu = Utils
    hjs._csms_patched = True
    from_schema_inner = getattr(hjs, "__from_schema", None)
    merged = getattr(hjs, "merged_as_strategies", None)
    if from_schema_inner is None or merged is None:
        return  # a later release: generate without the cache
    cache: dict[tuple, tuple] = {}  # the strategy, and the arguments whose ids are in its key (kept alive)

    def cached_from_schema(schema: Any, *, custom_formats: Any, alphabet: Any) -> Any:
        key = ("schema", encode_canonical_json(schema), id(alphabet), id(custom_formats))
        if key not in cache:
            strategy = from_schema_inner(schema, custom_formats=custom_formats, alphabet=alphabet)
            cache[key] = (strategy, alphabet, custom_formats)
        return cache[key][0]

    def cached_merged(schemas: Any, *, alphabet: Any, custom_formats: Any) -> Any:
        key = ("merged", encode_canonical_json(schemas), id(alphabet), id(custom_formats))
        if key not in cache:
            cache[key] = (merged(schemas, alphabet=alphabet, custom_formats=custom_formats), alphabet, custom_formats)
        return cache[key][0]

    setattr(hjs, "__from_schema", cached_from_schema)
    hjs.merged_as_strategies = cached_merged


_patch_hypothesis_jsonschema()
from hypothesis_jsonschema import from_schema  # noqa: E402

__all__ = ["from_schema"]
