"""One incident: what fired, its chart, timeline and related incidents; the actions on it."""
