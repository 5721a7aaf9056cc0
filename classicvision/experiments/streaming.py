"""Many image files through one function on a few threads: results in order, memory bounded.

The encoders' runners (:mod:`classicvision.experiments.fisher`) read an image, compute its dense
SIFT and encode it in one go, so an image's descriptors (5 MB at step 4 over three sizes) live
only while it is encoded, and only the encoding comes back. Threads suffice: the dense SIFT
kernels and the matrix products of the encoders release the GIL, so two threads keep two cores
busy, and nothing crosses a process boundary (a worker process would pickle every image's
descriptors back). The kernels run serially inside these threads
(:func:`classicvision._kernels.jit.num_threads` is 1 outside the main thread), and the caller
holds BLAS to one thread (``threadpoolctl``), so nothing is oversubscribed.
"""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor

__all__ = ["stream_images"]


def stream_images(items, work, *, threads: int = 1, progress: bool = False, desc: str = "images"):
    """Yield ``(index, work(index, item))`` for every item of ``items``, in order.

    Parameters
    ----------
    items : sequence
        Image paths (or anything ``work`` takes).
    work : callable
        ``work(index, item)``; called from ``threads`` threads at once (the calling thread alone
        when ``threads <= 1``). An exception it raises reaches the caller at that item.
    threads : int
        Threads; at most ``4 * threads`` items are in flight (started and not yet yielded), so the
        results held at any time stay bounded however fast the threads run ahead.
    progress : bool
        A tqdm bar on stderr.
    desc : str
        The bar's label.

    Notes
    -----
    Leaving the loop early (``break``, an exception, Ctrl-C) cancels the items not yet started
    and waits for the few running ones, so no thread outlives the call.

    Examples
    --------
    >>> [r for r in stream_images([1, 2, 3], lambda i, x: (i, x * x), threads=2)]
    [(0, (0, 1)), (1, (1, 4)), (2, (2, 9))]
    """
    from tqdm.auto import tqdm

    items = list(items)
    threads = max(int(threads), 1)
    with tqdm(total=len(items), desc=desc, disable=not progress, file=sys.stderr) as bar:
        if threads == 1 or len(items) < 2:
            for i, item in enumerate(items):
                result = work(i, item)
                bar.update(1)
                yield i, result
            return
        pool = ThreadPoolExecutor(threads, thread_name_prefix="classicvision_stream")
        pending: deque = deque()
        try:
            upcoming = iter(enumerate(items))
            for i, item in upcoming:
                pending.append((i, pool.submit(work, i, item)))
                if len(pending) >= 4 * threads:
                    break
            while pending:
                i, future = pending.popleft()
                result = future.result()
                for j, item in upcoming:  # keep the window full
                    pending.append((j, pool.submit(work, j, item)))
                    break
                bar.update(1)
                yield i, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
