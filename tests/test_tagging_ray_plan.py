"""Placement of the Ray Recognizer actors (GPU or CPU), decided from the cluster's resources.

The GPU branch cannot run on a machine without a GPU; what is tested here is the decision that
``tag_with_ray`` hands to Ray Data (device, GPUs per actor, pool size), on made-up cluster resources."""

import pytest

from mersdk.errors import MersdkError
from mersdk.tagging.ray_runner import actor_plan


def test_gpu_cluster_gets_one_cuda_actor_per_gpu():
    plan = actor_plan({"CPU": 64.0, "GPU": 4.0})
    assert plan == {"device": "cuda", "num_gpus": 1, "num_threads": None, "concurrency": 4}


def test_cpu_cluster_gets_actors_of_cpus_per_actor_cores():
    assert actor_plan({"CPU": 16.0}) == {"device": "cpu", "num_gpus": 0, "num_threads": 2, "concurrency": 8}
    assert actor_plan({"CPU": 16.0}, cpus_per_actor=4)["concurrency"] == 4
    assert actor_plan({"CPU": 1.0})["concurrency"] == 1  # fewer cores than one actor wants: still one


def test_explicit_choices_win_and_bad_ones_are_refused():
    plan = actor_plan({"CPU": 64.0, "GPU": 4.0}, use_gpus=False, concurrency=3)
    assert plan["device"] == "cpu" and plan["num_gpus"] == 0 and plan["concurrency"] == 3
    assert actor_plan({"CPU": 64.0, "GPU": 4.0}, concurrency=2)["concurrency"] == 2
    with pytest.raises(MersdkError, match="no GPU"):
        actor_plan({"CPU": 8.0}, use_gpus=True)
    with pytest.raises(MersdkError, match="concurrency"):
        actor_plan({"CPU": 8.0}, concurrency=0)
    with pytest.raises(MersdkError, match="cpus_per_actor"):
        actor_plan({"CPU": 8.0}, cpus_per_actor=0)
