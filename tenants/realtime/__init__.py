"""Realtime: WebSocket tenant resolution, the consumer base every live view uses, presence."""
