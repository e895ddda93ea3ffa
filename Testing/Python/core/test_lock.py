"""The lock file that keeps two runs from writing one folder (hrinet.core.lock)."""

from __future__ import annotations

import os

import pytest

from hrinet.core.errors import HRINetError
from hrinet.core.lock import exclusive_lock

pytestmark = pytest.mark.skipif(os.name == "nt", reason="flock locks are POSIX only")


def test_the_lock_is_held_during_the_work_and_removed_after(tmp_path):
    lock = tmp_path / ".hrinet.lock"
    with exclusive_lock(lock, "busy"):
        assert lock.read_text() == f"process {os.getpid()}"
        with pytest.raises(HRINetError, match=r"^busy \(process \d+\); wait for it"):
            with exclusive_lock(lock, "busy"):
                pass
    assert not lock.exists()


def test_a_lock_that_cannot_be_created_says_why_not_that_a_file_is_in_the_way(tmp_path):
    lock = tmp_path / "no such folder" / ".hrinet.lock"
    with pytest.raises(HRINetError) as e:
        with exclusive_lock(lock, "busy"):
            pass
    assert "cannot create the lock file" in str(e.value) and "No such file" in str(e.value)
    assert "not a lock file" not in str(e.value) and not lock.parent.exists()


def test_a_users_file_at_the_lock_path_is_refused_and_kept(tmp_path):
    lock = tmp_path / ".hrinet.lock"
    lock.write_text("my notes")
    with pytest.raises(HRINetError, match="is not a lock file of hrinet; move it away"):
        with exclusive_lock(lock, "busy"):
            pass
    assert lock.read_text() == "my notes"


def test_a_users_file_that_starts_like_a_lock_but_holds_more_is_kept(tmp_path):
    lock = tmp_path / ".hrinet.lock"
    text = "process 1" + " " * 300 + "my notes, after the spaces"
    lock.write_text(text)
    with pytest.raises(HRINetError, match="is not a lock file of hrinet"):
        with exclusive_lock(lock, "busy"):
            pass
    assert lock.read_text() == text
