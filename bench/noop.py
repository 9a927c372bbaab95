"""The benchmark's job: nothing at all, so that the figures measure the queue."""


def noop() -> None:
    return None
