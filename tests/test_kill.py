"""A run killed with SIGKILL (mid-epoch, while writing its checkpoint, while writing its record)
and started again ends with the record of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

#: The run: a tiny profile on the synthetic MNIST of conftest.py, one thread.
RUN = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from wcbook.experiments import Profile
    from wcbook.training import train_ensemble
    TINY = Profile(name="tiny", description="test", n_train=300, n_test=100, epochs=3,
                   image_size=7, eval_every=1)
    folder = sys.argv[1]
    train_ensemble("mnist-scratch", TINY, [0, 1], device="cpu", results_dir=folder + "/results",
                   checkpoint_dir=folder + "/checkpoints", progress=False)
    """
)

#: Code run before RUN that kills the process at one moment.
KILLERS = {
    # the second step of epoch 2
    "mid-epoch": """
        import os, signal
        from wcbook.training import loop
        real, calls = loop._make_step, []
        def make(run, net, alive):
            step = real(run, net, alive)
            def killing(images, labels):
                calls.append(1)
                if len(calls) == 4:
                    os.kill(os.getpid(), signal.SIGKILL)
                return step(images, labels)
            return killing
        loop._make_step = make
    """,
    # half-way through writing the checkpoint of epoch 2
    "checkpoint write": """
        import os, signal, torch
        from wcbook.training import checkpoint
        real, calls = checkpoint.torch.save, []
        def killing(state, handle):
            calls.append(1)
            if len(calls) == 2:
                handle.write(b"x" * 1000)
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real(state, handle)
        checkpoint.torch.save = killing
    """,
    # half-way through writing the first record, after the last epoch
    "record write": """
        import os, signal
        from wcbook.training import records
        def killing(record, handle, **kwargs):
            handle.write('{"experiment": ')
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        records.json.dump = killing
    """,
}


def _python(code: str, folder, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True,
        timeout=600,
    )


def _records(folder) -> list[dict]:
    paths = sorted((folder / "results" / "mnist-scratch" / "tiny").glob("seed*.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("straight")
    env = {**os.environ, "WCBOOK_DATA": str(data_root)}
    done = _python(RUN, folder, env)
    assert done.returncode == 0, done.stderr
    return _records(folder)


@pytest.mark.parametrize("moment", KILLERS)
def test_a_killed_run_resumes_to_the_uninterrupted_record(moment, straight, tmp_path, data_root):
    env = {**os.environ, "WCBOOK_DATA": str(data_root)}
    killed = _python(textwrap.dedent(KILLERS[moment]) + RUN, tmp_path, env)
    assert killed.returncode == -9, killed.stderr  # SIGKILL
    again = _python(RUN, tmp_path, env)
    assert again.returncode == 0, again.stderr
    resumed = _records(tmp_path)
    assert len(resumed) == len(straight) == 2
    for a, b in zip(resumed, straight):
        assert a["history"] == b["history"] and a["metrics"] == b["metrics"]


def test_a_damaged_checkpoint_falls_back_or_says_how_to_start_over(tmp_path, capsys):
    from wcbook.training import CheckpointError, checkpoint

    path = tmp_path / "seed0.pt"
    checkpoint.save(path, {"format": 3, "epoch": 1})
    checkpoint.save(path, {"format": 3, "epoch": 2})
    assert checkpoint.previous_path(path).exists()
    for damage in (b"", b"PK\x03\x04 truncated"):
        path.write_bytes(damage)
        assert checkpoint.load(path) == {"format": 3, "epoch": 1}
        warning = capsys.readouterr().err.strip()
        assert warning.count("\n") == 0 and str(path) in warning
    checkpoint.previous_path(path).unlink()
    with pytest.raises(CheckpointError, match="--no-resume") as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)
    assert checkpoint.load(tmp_path / "none.pt") is None
