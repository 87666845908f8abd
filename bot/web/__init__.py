"""The aiohttp layer: app factory, keys, middleware, health, JSON API, console."""
