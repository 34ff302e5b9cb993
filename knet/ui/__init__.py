"""The web page of a cluster: service map, live flows, request stories, rules, events and logs
(``knet up --ui``, ``knet ui``), plus its static exports (``knet trace --html``, ``knet map``).
Decisions live in ``view`` (pure); ``feed`` and ``server`` are the asyncio adapters."""
