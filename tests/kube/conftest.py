"""The serve Deployment under `podman kube play`: set up once per session, torn down after.

Only tests marked ``kube`` use it (``make kube-test``); they need podman (the container kit
of ../shared/containers installs it) and its stand-in base images.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.kube.kubeplay import KubePlay, podman_binary


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubePlay]:
    """Images built, PostgreSQL, train and migrate pods done, serve ready; all gone after."""
    if podman_binary() is None:
        pytest.fail(
            "no podman on PATH: run ../shared/containers/setup and build-base-images "
            "(or install podman >= 4.3 and the images the Dockerfiles start from)"
        )
    play = KubePlay(tmp_path_factory.mktemp("kube"))
    started = time.monotonic()
    play.build()
    built = time.monotonic() - started
    try:
        steps = play.up()
        timings = ", ".join(f"{step} {seconds:.0f}s" for step, seconds in steps.items())
        print(f"\nkube play {play.prefix}: build {built:.0f}s, {timings}")
        yield play
    finally:
        play.down()
