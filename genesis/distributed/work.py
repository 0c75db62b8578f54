"""``Work``: the handle of a collective, waited on before its result is read."""

__all__ = ["Work"]


class Work:
    """A started collective; ``wait()`` completes it and runs its finishing steps in order."""

    def __init__(self, wait_fn=None, test_fn=None):
        self._wait_fn = wait_fn
        self._test_fn = test_fn
        self._then = []
        self._done = wait_fn is None

    def then(self, fn):
        """Run ``fn()`` after completion (copy back, cast, scale); returns self."""
        if self._done:
            fn()
        else:
            self._then.append(fn)
        return self

    def is_completed(self):
        """True once ``wait()`` has run; polls the transport (which also advances it)."""
        if not self._done and self._test_fn is not None and self._test_fn():
            self.wait()
        return self._done

    def wait(self, timeout=None):
        """Block until the collective has finished and its result is in place; returns True."""
        if not self._done:
            self._wait_fn()
            self._done = True
            for fn in self._then:
                fn()
            self._then = []
        return True
