"""skip/limit paging as Flip's list endpoints take it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    skip: int = 0
    limit: int = DEFAULT_LIMIT


def page_params(
    skip: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Rows to return (max 1000)")
    ] = DEFAULT_LIMIT,
) -> Page:
    return Page(skip=skip, limit=limit)


PageDep = Annotated[Page, Depends(page_params)]
