"""bench.cores: the benchmark's per-core layout puts processes (every thread) where it says."""

import os
import subprocess
import sys
import threading

import pytest

from bench import cores

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to move between")


def _thread_affinity() -> frozenset[int]:
    found: list[frozenset[int]] = []
    thread = threading.Thread(target=lambda: found.append(frozenset(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    return found[0]


def test_running_on_moves_this_process_and_its_new_threads_then_back():
    before = frozenset(os.sched_getaffinity(0))
    with cores.running_on(cores.MEASURED):
        assert frozenset(os.sched_getaffinity(0)) == cores.MEASURED
        assert _thread_affinity() == cores.MEASURED
    assert frozenset(os.sched_getaffinity(0)) == before


def test_a_child_started_with_the_pinner_runs_where_it_is_told():
    out = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                         capture_output=True, text=True, check=True,
                         preexec_fn=cores.pinner(cores.others()))
    assert out.stdout.strip() == str(sorted(cores.others()))
    assert cores.MEASURED.isdisjoint(cores.others())


def test_unpinned_means_anywhere():
    assert cores.measured() is None and cores.rest() is None and cores.pinner(None) is None
