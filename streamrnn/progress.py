"""A tiny progress bar and a ticking "working..." line, on stderr, for the ``streamrnn`` command.

On a terminal the bar redraws one line in place (at most every ``interval`` seconds);
elsewhere (a log file, a pipe) it writes a full line at 0%, every 25% and at the end,
so logs stay readable.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> ticks = iter(range(100))  # a fake clock: one second per reading
>>> bar = Progress(200, "learning", stream=out, clock=lambda: next(ticks))
>>> for _ in range(200):
...     bar.update()
>>> bar.close()
>>> print(out.getvalue(), end="")
learning [..............................]   0/200   0%
learning [########......................]  50/200  25% 50/s
learning [###############...............] 100/200  50% 50/s
learning [######################........] 150/200  75% 50/s
learning [##############################] 200/200 100% 50/s 0:04
"""

import sys
import threading
import time


def _clock_text(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """A progress bar for ``total`` items: ``update(n)`` as they are done, ``close()`` at the end.

    ``clock`` returns seconds (``time.perf_counter`` by default; tests pass a fake one).
    The bar shows done/total, the percentage, the rate and, while running, the time
    left; ``close`` prints the final rate and the elapsed time.
    """

    def __init__(self, total, label, stream=None, width=30, interval=0.1, clock=time.perf_counter):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.interval = interval
        self.clock = clock
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = clock()
        self._last = None
        self._next_quarter = 0
        self._closed = False
        self._draw(self._start)

    def _line(self, now, final=False):
        frac = min(self.done / self.total, 1.0)
        filled = int(round(frac * self.width))
        n = len(str(self.total))
        text = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done:{n}d}/{self.total} {frac:4.0%}"
        elapsed = now - self._start
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f" {rate:,.0f}/s"
            if final:
                text += f" {_clock_text(elapsed)}"
            elif self._tty and self.done < self.total:
                text += f" ETA {_clock_text((self.total - self.done) / rate)}"
        return text

    def _draw(self, now, final=False):
        if self._tty:
            self.stream.write("\r" + self._line(now, final) + ("\n" if final else ""))
            self.stream.flush()
            self._last = now
            return
        quarter = self.done * 4 // self.total
        if final or quarter >= self._next_quarter:
            if not final and quarter >= 4:
                return  # the 100% line is written by close()
            self.stream.write(self._line(now, final) + "\n")
            self.stream.flush()
            self._next_quarter = quarter + 1

    def update(self, n=1):
        """Count ``n`` more items done."""
        self.done += n
        if self._tty:
            now = self.clock()
            if now - self._last >= self.interval:
                self._draw(now)
        elif self.done * 4 // self.total >= self._next_quarter and self.done < self.total:
            self._draw(self.clock())

    def close(self):
        """Draw the final line (once)."""
        if not self._closed:
            self._closed = True
            self._draw(self.clock(), final=True)


class Ticker:
    """``with Ticker("compiling kernels"):`` writes ``compiling kernels... 3 s`` while the block runs.

    On a terminal a thread redraws the elapsed seconds once a second; elsewhere only the
    final line is written. The final line says how long the block took.
    """

    def __init__(self, label, stream=None, clock=time.perf_counter):
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread = None
        self.elapsed = None

    def __enter__(self):
        self._start = self.clock()
        if self._tty:
            self.stream.write(f"{self.label}...")
            self.stream.flush()
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def _tick(self):
        while not self._stop.wait(1.0):
            self.stream.write(f"\r{self.label}... {self.clock() - self._start:.0f} s")
            self.stream.flush()

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.elapsed = self.clock() - self._start
        status = "done" if exc_type is None else "failed"
        prefix = "\r" if self._tty else ""
        self.stream.write(f"{prefix}{self.label}... {status} in {self.elapsed:.1f} s\n")
        self.stream.flush()
        return False
