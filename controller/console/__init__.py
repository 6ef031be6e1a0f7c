"""Server-rendered web console (Vietnamese first, English too)."""
