"""The DSL console: an aiohttp app served by `safeguard-collector serve --web`."""
