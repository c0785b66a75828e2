"""The one error family a user can cause: the CLI prints its message, never a traceback."""


class AgentRLError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
