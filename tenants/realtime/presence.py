"""Who is looking at a tenant right now, kept in Redis under the tenant's own key.

Each open connection is a field of one hash per tenant, with the time it was last seen. Entries
not refreshed within `STALE_AFTER` seconds are dropped on read, so a crashed server process leaves
no ghosts behind.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from portal.scoping import tenant_key

STALE_AFTER = 60
# One client per event loop: asyncio connections cannot be shared between loops.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.from_url(settings.REDIS_URL, decode_responses=True)
    return client


def _key(schema_name: str) -> str:
    return tenant_key(schema_name, "presence")


async def join(schema_name: str, channel_name: str, viewer: dict) -> None:
    entry = json.dumps({**viewer, "seen": time.time()})
    async with _redis().pipeline(transaction=True) as pipe:
        await (
            pipe.hset(_key(schema_name), channel_name, entry)
            .expire(_key(schema_name), STALE_AFTER * 2)
            .execute()
        )


async def leave(schema_name: str, channel_name: str) -> None:
    await _redis().hdel(_key(schema_name), channel_name)


async def viewers(schema_name: str) -> list[dict]:
    """Distinct people with a live connection to the tenant, sorted by name."""
    raw = await _redis().hgetall(_key(schema_name))
    now = time.time()
    stale = []
    people: dict[str, dict] = {}
    for channel_name, entry in raw.items():
        data = json.loads(entry)
        if now - data.get("seen", 0) > STALE_AFTER:
            stale.append(channel_name)
            continue
        people[data["id"]] = {"id": data["id"], "name": data["name"], "role": data["role"]}
    if stale:
        await _redis().hdel(_key(schema_name), *stale)
    return sorted(people.values(), key=lambda p: p["name"])
