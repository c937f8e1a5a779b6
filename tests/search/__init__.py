"""Helpers shared by the search tests."""

from __future__ import annotations


def record_sessions(agent) -> list:
    """Wrap ``agent.play_sessions`` so the test sees every iteration's sessions."""
    seen = []
    original = agent.play_sessions

    def recording():
        sessions = original()
        seen.append(sessions)
        return sessions

    agent.play_sessions = recording
    return seen
