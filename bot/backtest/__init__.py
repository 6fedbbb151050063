"""Backtest: the LP and its layered protection on recorded history, hour by hour, through
the same policies.alvh.decide() the daemon calls (see docs/backtest.md)."""
