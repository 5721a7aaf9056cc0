"""Tests for classicvision._kernels.team (compiled worker loops) and the dense SIFT sweep that runs
on one: the fused bands equal the two-pass path bit for bit, on a team of any size, and the
team's protocol never runs a chunk twice or of a call it did not see posted."""

from __future__ import annotations

import os

import numpy as np
import pytest
from numba import njit

from classicvision._kernels import affinity, atomics, jit, team
from classicvision.features import dense_sift as ds

pytestmark = pytest.mark.skipif(not team.AVAILABLE, reason="teams need Linux futex(2)")


@njit(cache=True, nogil=True)
def _count_chunks(control, frame, values, worker):
    """A test entry: chunk c of n adds 1 to counts[c] and writes values[0] * (c + 1) into out[c]."""
    seen = atomics.atomic_load(control, team.EPOCH)
    while True:
        if worker:
            if atomics.atomic_load(control, team.STOP) != 0:
                return
            seen = team.idle(control, seen)
            if atomics.atomic_load(control, team.STOP) != 0:
                return
        while True:
            chunk, n = team.claim(control)
            if chunk < 0:
                break
            counts = team.array_at(frame[0], (frame[1],), np.int64)
            out = team.array_at(frame[2], (frame[1],), np.float64)
            atomics.atomic_add(counts, chunk, 1)
            out[chunk] = values[0] * (chunk + 1)
            team.finish(control, n)
        if not worker:
            return


@pytest.mark.parametrize("workers", [1, 3])
def test_every_chunk_of_every_call_runs_once(workers):
    squad = team.Team(_count_chunks, 3, 1, workers, 2000)
    try:
        rng = np.random.default_rng(0)
        for call in range(400):
            n = int(rng.integers(1, 40))
            counts = np.zeros(n, np.int64)
            out = np.zeros(n)
            squad.frame[:] = counts.ctypes.data, n, out.ctypes.data
            squad.values[0] = call
            squad.run(n, 1 if call % 50 == 0 else 2000, 1000)   # some calls find the workers asleep
            np.testing.assert_array_equal(counts, 1)
            np.testing.assert_array_equal(out, call * np.arange(1, n + 1))
    finally:
        squad.stop()
    assert not any(thread.is_alive() for thread in squad.threads)


def test_a_claim_past_the_chunks_is_refused_and_a_new_call_starts_at_chunk_zero():
    control = team.new_control(0)
    assert team.claim(control) == (-1, 0)                  # nothing posted yet
    team.post(control, 2, 0)
    assert [team.claim(control) for _ in range(3)] == [(0, 2), (1, 2), (-1, 0)]
    team.post(control, 3, 0)                               # the next call: its own tag and count
    assert team.claim(control) == (0, 3)


def test_workers_do_the_chunks_the_caller_leaves():
    squad = team.Team(_count_chunks, 3, 1, 1, 1 << 40)     # the worker polls, never sleeps
    try:
        counts, out = np.zeros(1, np.int64), np.zeros(1)
        squad.frame[:] = counts.ctypes.data, 1, out.ctypes.data
        team.post(squad.control, 1, 1 << 40)
        done = team.join(squad.control, 1, 1 << 40)         # the caller claims nothing: a worker must
        assert counts[0] == 1 and done < 1 << 40            # joined while polling: it never slept
    finally:
        squad.stop()


def _asleep_team(workers):
    """A team of ``workers`` whose workers poll once, then sleep; returned once they all sleep."""
    import time

    squad = team.Team(_count_chunks, 3, 1, workers, 1)
    deadline = time.monotonic() + 10
    while atomics.load(squad.control, team.SLEEPERS) < workers and time.monotonic() < deadline:
        time.sleep(0.001)
    assert atomics.load(squad.control, team.SLEEPERS) == workers
    return squad


def _one_call(squad):
    counts, out = np.zeros(2, np.int64), np.zeros(2)
    squad.frame[:] = counts.ctypes.data, 2, out.ctypes.data
    squad.run(2, 1, 1000)
    np.testing.assert_array_equal(counts, 1)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="steering needs two allowed CPUs")
def test_a_call_that_finds_workers_asleep_keeps_them_off_the_callers_cpu(monkeypatch):
    allowed = os.sched_getaffinity(0)
    for cpu in sorted(allowed)[:2]:                         # the caller "on" one CPU, then on another
        monkeypatch.setattr(affinity, "current_cpu", lambda: cpu)
        squad = _asleep_team(2)
        try:
            _one_call(squad)
            for thread in squad.threads:
                assert os.sched_getaffinity(thread.native_id) == allowed - {cpu}
        finally:
            squad.stop()


def test_steering_sets_nothing_with_one_cpu_and_stops_when_refused(monkeypatch):
    cpu = min(os.sched_getaffinity(0))
    calls = []
    monkeypatch.setattr(affinity, "current_cpu", lambda: cpu)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {cpu})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, mask: calls.append(mask))
    squad = _asleep_team(1)
    try:
        _one_call(squad)                                    # one allowed CPU: no mask to set
        assert calls == [] and squad.steering.active
    finally:
        squad.stop()

    def refuse(pid, mask):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {cpu, cpu + 1})
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    squad = _asleep_team(1)
    try:
        _one_call(squad)                                    # refused: the call still runs, steering ends
        assert not squad.steering.active
    finally:
        squad.stop()


def _images():
    rng = np.random.default_rng(3)
    yield rng.integers(0, 256, (256, 256)).astype(np.uint8)
    yield rng.random((200, 311), dtype=np.float32)
    yield rng.integers(0, 256, (97, 45)).astype(np.uint8)
    yield np.ascontiguousarray(rng.integers(0, 256, (300, 180)).astype(np.uint8).T)


@pytest.mark.parametrize("step, size, sigma, rootsift", [(8, 16, 1.0, True), (3, 12, 0.5, False),
                                                         (5, 32, 2.0, True), (8, 8, 1.0, False)])
def test_fused_bands_equal_the_two_pass_path_on_any_team(step, size, sigma, rootsift):
    """The fused sweep (each band smooths its own rows) against _smoothed + _describe_grid, with
    1 to 4 bands: bit-identical."""
    for image in _images():
        scale = 1 / 255 if image.dtype == np.uint8 else 1.0
        assert ds._fused(image, sigma)
        for threads in (1, 2, 3, 4):
            fused = ds._describe_fused(image, scale, sigma, step, float(size), 4, 8, 0.2, rootsift, threads)
            smoothed = ds._smoothed(image, sigma, scale, threads)
            two_pass = ds._describe_grid(smoothed, step, float(size), 4, 8, 0.2, rootsift, threads)
            np.testing.assert_array_equal(fused, two_pass)


def test_dense_sift_takes_the_fused_path_and_backs_off_to_one_thread(monkeypatch):
    image = np.random.default_rng(5).integers(0, 256, (256, 256)).astype(np.uint8)
    calls = []
    original = team.Team.run
    monkeypatch.setattr(team.Team, "run", lambda self, *a: calls.append(a) or original(self, *a))
    monkeypatch.setattr(jit, "_backoff_until", 0.0)
    monkeypatch.setattr(ds, "num_threads", lambda: 2)
    threaded = ds.dense_sift(image, rootsift=True)
    assert len(calls) == 1 and calls[0][0] == 2             # one hand-off of two bands
    monkeypatch.setattr(jit, "_backoff_until", float("inf"))
    serial = ds.dense_sift(image, rootsift=True)
    assert len(calls) == 1                                  # backing off: no team
    monkeypatch.setattr(ds, "_fused", lambda *a: False)
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ds.dense_sift(image, rootsift=True)[1], threaded[1])


def test_the_team_grows_and_the_smaller_one_ends():
    from classicvision._kernels import dense_sift as kernels

    small = kernels._get_team(1)
    big = kernels._get_team(small.workers + 1)
    assert big is not small and big.workers == small.workers + 1
    assert kernels._get_team(1) is big
    assert not any(thread.is_alive() for thread in small.threads)
    assert all(thread.is_alive() for thread in big.threads)


def test_dense_sift_from_threads_at_once_is_serial_and_exact(in_threads):
    image = np.random.default_rng(9).integers(0, 256, (256, 256)).astype(np.uint8)
    want = ds.dense_sift(image)[1]
    for got in in_threads(lambda i: ds.dense_sift(image)[1], 4):
        np.testing.assert_array_equal(got, want)
