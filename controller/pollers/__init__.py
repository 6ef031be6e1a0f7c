"""Pollers: devices that cannot run the agent (switches, cameras, projectors) are polled.

Each poller does network I/O only, and hands ``controller.store.polls.PollResult`` rounds to
``record_polls``; it writes no metrics of its own (the store collector reads what it recorded).
"""
